"""notification.toolkit.fluxcd.io (notification-controller): Provider and Alert (v1beta3), Receiver (v1).

In v1beta3 Provider and Alert are static configuration: they have no status subresource and are not
reconciled (``flux reconcile`` has no command for them), but they can still be suspended.
"""
from __future__ import annotations

from controllers.api import meta
from controllers.api.meta import age_column, local_ref, ready_columns, status, suspend
from controllers.api.schema import Arr, Duration, Enum, Field, Map, Str, derive, obj
from controllers.api.types import Kind, OlderVersion

NOTIFICATION_CONTROLLER = "notification-controller"

#: Kinds an Alert can watch and a Receiver can trigger.
EVENT_SOURCE_KINDS = ("Bucket", "GitRepository", "Kustomization", "HelmRelease", "HelmChart", "HelmRepository",
                      "ImageRepository", "ImagePolicy", "ImageUpdateAutomation", "OCIRepository")
PROVIDER_TYPES = ("slack", "discord", "msteams", "rocket", "generic", "generic-hmac", "github", "gitlab", "gitea",
                  "bitbucketserver", "bitbucket", "azuredevops", "googlechat", "googlepubsub", "webex", "sentry",
                  "azureeventhub", "telegram", "lark", "matrix", "opsgenie", "alertmanager", "grafana",
                  "githubdispatch", "pagerduty", "datadog", "nats", "zulip", "otel")
#: Provider types that post Git commit statuses (the only ones allowed a commitStatusExpr).
COMMIT_STATUS_PROVIDER_TYPES = ("github", "gitlab", "gitea", "bitbucketserver", "bitbucket", "azuredevops")
RECEIVER_TYPES = ("generic", "generic-hmac", "github", "gitlab", "bitbucket", "harbor", "dockerhub", "quay", "gcr",
                  "nexus", "acr", "cdevents")


def _event_sources(description: str, *, required: bool = True) -> Field:
    return Arr(obj(
        "Objects by kind and name ('*' for all, then matchLabels may narrow down).",
        apiVersion=Str("API version of the objects."),
        kind=Enum(*EVENT_SOURCE_KINDS, doc="Kind of the objects.", required=True),
        matchLabels=Map(Str(), "Labels the objects must have (with name '*')."),
        name=Str("Name of the object, or '*'.", required=True, min_length=1, max_length=253),
        namespace=Str("Namespace of the objects; the referrer's when empty.", min_length=1, max_length=253),
    ), description, required=required)


_COMMIT_STATUS_RULE = (
    " || ".join(f"self.type == '{t}'" for t in COMMIT_STATUS_PROVIDER_TYPES) + " || !has(self.commitStatusExpr)",
    "spec.commitStatusExpr is only supported for the "
    + ", ".join(f"'{t}'" for t in COMMIT_STATUS_PROVIDER_TYPES) + " provider types",
)

PROVIDER = Kind(
    group=meta.NOTIFICATION_GROUP, version="v1beta3", kind="Provider", plural="providers", singular="provider",
    spec_schema=obj(
        "Where and how notifications are delivered (chat, webhook, Git commit status, ...).",
        type_=Enum(*PROVIDER_TYPES, doc="The notification service.", required=True),
        interval=Duration("Deprecated and unused."),
        channel=Str("Channel, room or topic to post to.", max_length=2048),
        username=Str("Name to post as.", max_length=2048),
        address=Str("Service address (webhook URL, API endpoint, repository URL, ...).", max_length=2048),
        timeout=Duration("Timeout of a delivery.", hours=False),
        proxy=Str("Deprecated: HTTP(S) proxy address; use proxySecretRef.", max_length=2048,
                  pattern=r"^(http|https)://.*$"),
        proxySecretRef=local_ref("Secret with the proxy address and optional credentials."),
        secretRef=local_ref("Secret with the address, token, headers or credentials of the service."),
        certSecretRef=local_ref("Secret with TLS client certificate/key and/or CA for the service."),
        serviceAccountName=Str("Service account whose cloud identity authenticates to the service."),
        commitStatusExpr=Str("CEL expression building the commit status identifier (Git providers only)."),
        suspend=suspend("Stop sending notifications through this provider until unset."),
        rules=[_COMMIT_STATUS_RULE],
    ).schema,
    status_schema={},
    printer_columns=(age_column(),),
    cli_names=("alert-provider", "alert-providers", "provider", "providers"),
    suspendable=True, reconcilable=False, controller=NOTIFICATION_CONTROLLER,
    static_ready="Provider is Ready",
)

ALERT = Kind(
    group=meta.NOTIFICATION_GROUP, version="v1beta3", kind="Alert", plural="alerts", singular="alert",
    spec_schema=obj(
        "Which events to forward to a Provider.",
        providerRef=local_ref("The Provider to send through (same namespace).", required=True),
        eventSeverity=Enum("info", "error", doc="Minimum severity of forwarded events.", default="info"),
        eventSources=_event_sources("Objects whose events are forwarded."),
        eventMetadata=Map(Str(), "Metadata added to every forwarded event."),
        inclusionList=Arr(Str(), "Regular expressions; only events whose message matches one are sent."),
        exclusionList=Arr(Str(), "Regular expressions; events whose message matches one are dropped."),
        summary=Str("Deprecated: use eventMetadata.", max_length=255),
        suspend=suspend("Stop forwarding events until unset."),
    ).schema,
    status_schema={},
    printer_columns=(age_column(),),
    cli_names=("alert", "alerts"),
    suspendable=True, reconcilable=False, controller=NOTIFICATION_CONTROLLER,
    columns=(meta.SUSPENDED_COLUMN,), static_ready="Alert is Ready",
)

RECEIVER = Kind(
    group=meta.NOTIFICATION_GROUP, version="v1", kind="Receiver", plural="receivers", singular="receiver",
    spec_schema=obj(
        "A webhook endpoint that requests reconciliation of objects when called.",
        type_=Enum(*RECEIVER_TYPES, doc="The webhook sender, deciding how calls are verified.", required=True),
        interval=Duration("How often to reconcile the receiver.", default="10m"),
        events=Arr(Str(), "Event types to accept (sender specific); all when empty."),
        resources=_event_sources("Objects to request reconciliation of."),
        resourceFilter=Str("CEL expression deciding per object whether to request reconciliation."),
        secretRef=local_ref("Secret whose 'token' builds the webhook path and verifies payloads.", required=True),
        suspend=suspend("Stop handling webhook calls until unset."),
    ).schema,
    status_schema=status(
        webhookPath=Str("Path of the generated webhook endpoint, '/hook/<sha256>'."),
    ).schema,
    printer_columns=(age_column(), *ready_columns()),
    cli_names=("receiver", "receivers"),
    columns=(meta.SUSPENDED_COLUMN,), controller=NOTIFICATION_CONTROLLER,
)

# --- v1beta2, still served by Flux 2.7 (deprecated) ------------------------------------------------------
#: In v1beta2 Provider and Alert still had a status (they were reconciled); Provider lacked the fields below.
_RECONCILED = dict(status_schema=status().schema, printer_columns=(age_column(), *ready_columns()))
PROVIDER = PROVIDER.serving(OlderVersion(
    "v1beta2", derive(PROVIDER.spec_schema, remove=("commitStatusExpr", "proxySecretRef", "serviceAccountName")),
    **_RECONCILED))
ALERT = ALERT.serving(OlderVersion("v1beta2", ALERT.spec_schema, **_RECONCILED))
RECEIVER = RECEIVER.serving(OlderVersion("v1beta2", derive(RECEIVER.spec_schema, remove=("resourceFilter",))))
