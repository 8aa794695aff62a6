"""The notification-controller (notification.toolkit.fluxcd.io), as Flux 2.7's.

- :mod:`.event`: Flux's event (``eventv1beta1.Event``) as posted by every controller, and Go's JSON encoding;
- :mod:`.notifiers`: one notifier per Provider type, posting an event in the service's wire format;
- :mod:`.alerts`: which Alerts an event matches, and the metadata a notification carries;
- :mod:`.server`: the event endpoint (``--events-addr``) and the webhook receiver endpoint (``--receiverAddr``);
- :mod:`.receivers`: how each Receiver type verifies a webhook call;
- :mod:`.reconciler`: the Receiver reconciler and the component's wiring.
"""
