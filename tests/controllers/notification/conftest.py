"""The notification-controller in-process for a test: the Receiver reconciler on the test namespace and its
two endpoints (events, webhooks) on loopback ports. Controllers started after it post their events there."""
from __future__ import annotations

import pytest


@pytest.fixture
def notification_controller(start_controller, kube, namespace, flux_crds):
    """``.event_server.port``, ``.receiver_server.port``, ``.dispatcher`` (``.sent``/``.failed``); a root
    cause group window of 1 s."""
    from controllers.notification.reconciler import Options, ReceiverReconciler
    from controllers.runtime.events import EventRecorder

    reconciler = ReceiverReconciler(Options(events_addr="127.0.0.1:0", receiver_addr="127.0.0.1:0",
                                            group_window=1.0))
    recorder = EventRecorder(kube, "notification-controller").start()
    servers = reconciler.servers(kube, recorder, namespace)
    for server in servers:
        server.start()
    start_controller(reconciler, namespace)
    start_controller.events_webhook = f"http://127.0.0.1:{reconciler.event_server.port}/"
    try:
        yield reconciler
    finally:
        for server in reversed(servers):
            server.stop()
        recorder.stop(2)
