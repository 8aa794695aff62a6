"""Pieces every Flux API group shares: groups, annotations, condition vocabulary and common schema shapes.

The shapes mirror Flux's shared Go API packages (metav1.Condition, meta.LocalObjectReference,
meta.Artifact, the kustomize Patch/Image types, ...) so each kind module only describes what is its own.
"""
from __future__ import annotations

from typing import Any, Iterable

from controllers.api.types import Column, PrinterColumn
from controllers.api.enums import VERIFY_PROVIDERS
from controllers.api.schema import Arr, Bool, Duration, Enum, Field, Int, Map, Preserve, Str, Time, UNSET, obj

# --- API groups ---------------------------------------------------------------------------------------
SOURCE_GROUP = "source.toolkit.fluxcd.io"
SOURCE_EXTENSIONS_GROUP = "source.extensions.fluxcd.io"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
HELM_GROUP = "helm.toolkit.fluxcd.io"
NOTIFICATION_GROUP = "notification.toolkit.fluxcd.io"
IMAGE_GROUP = "image.toolkit.fluxcd.io"

# --- annotations, labels, finalizers ------------------------------------------------------------------
#: Set to any new value (fluxpy/flux use an RFC 3339 time) to ask for an immediate reconciliation.
RECONCILE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
#: HelmRelease: ask for a one-off forced release (replace) on the next reconciliation.
FORCE_REQUEST_ANNOTATION = "reconcile.fluxcd.io/forceAt"
#: HelmRelease: ask to reset the failure counters on the next reconciliation.
RESET_REQUEST_ANNOTATION = "reconcile.fluxcd.io/resetAt"
#: Label on Secrets/ConfigMaps whose changes should trigger reconciliation of the objects using them.
WATCH_LABEL = "reconcile.fluxcd.io/watch"
WATCH_LABEL_ENABLED = "Enabled"
#: Finalizer the toolkit controllers put on the objects they reconcile.
FINALIZER = "finalizers.fluxcd.io"
#: ArtifactGenerator (source-watcher) uses its own finalizer ...
ARTIFACT_GENERATOR_FINALIZER = "source.extensions.fluxcd.io/finalizer"
#: ... and is suspended by setting this annotation to "disabled" (it has no spec.suspend).
ARTIFACT_GENERATOR_RECONCILE_ANNOTATION = "source.extensions.fluxcd.io/reconcile"

# --- conditions ---------------------------------------------------------------------------------------
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
HEALTHY = "Healthy"
# source kinds
ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
SOURCE_VERIFIED = "SourceVerified"
FETCH_FAILED = "FetchFailed"
BUILD_FAILED = "BuildFailed"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
INCLUDE_UNAVAILABLE = "IncludeUnavailable"
# HelmRelease
RELEASED = "Released"
TEST_SUCCESS = "TestSuccess"
REMEDIATED = "Remediated"

# --- common reasons -----------------------------------------------------------------------------------
SUCCEEDED_REASON = "Succeeded"
FAILED_REASON = "Failed"
PROGRESSING_REASON = "Progressing"
PROGRESSING_WITH_RETRY_REASON = "ProgressingWithRetry"
SUSPENDED_REASON = "Suspended"
DEPENDENCY_NOT_READY_REASON = "DependencyNotReady"
RECONCILIATION_SUCCEEDED_REASON = "ReconciliationSucceeded"
RECONCILIATION_FAILED_REASON = "ReconciliationFailed"
ARTIFACT_FAILED_REASON = "ArtifactFailed"
BUILD_FAILED_REASON = "BuildFailed"
HEALTH_CHECK_FAILED_REASON = "HealthCheckFailed"
HEALTH_CHECK_CANCELED_REASON = "HealthCheckCanceled"
PRUNE_FAILED_REASON = "PruneFailed"
INVALID_PATH_REASON = "InvalidPath"
INVALID_URL_REASON = "InvalidURL"
INVALID_CEL_EXPRESSION_REASON = "InvalidCELExpression"
INSECURE_CONNECTIONS_DISALLOWED_REASON = "InsecureConnectionsDisallowed"
UNSUPPORTED_CONNECTION_TYPE_REASON = "UnsupportedConnectionType"
FEATURE_GATE_DISABLED_REASON = "FeatureGateDisabled"

#: Validation of metav1.Condition, as the apiserver's own types declare it.
CONDITION_TYPE_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                          r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$")
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
#: An OCI-style digest "<algorithm>:<encoded>".
DIGEST_PATTERN = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"
#: Kubernetes names.
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def is_dns1123_label(value: str) -> bool:
    """A valid namespace / label-style name: at most 63 lowercase alphanumerics or '-'."""
    import re

    return len(value) <= 63 and re.match(DNS1123_LABEL_PATTERN, value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """A valid object name (Secret, ...): dot-separated DNS-1123 labels, at most 253 characters."""
    import re

    return len(value) <= 253 and re.match(DNS1123_SUBDOMAIN_PATTERN, value) is not None


# --- shared schema shapes -----------------------------------------------------------------------------
def condition() -> Field:
    """One metav1.Condition."""
    return obj(
        "An observation of one aspect of the object's state.",
        lastTransitionTime=Time("When the status last changed.", required=True),
        message=Str("Human readable details.", required=True, max_length=32768),
        observedGeneration=Int("The generation the condition was computed for.", format="int64", minimum=0),
        reason=Str("CamelCase machine readable cause.", required=True, min_length=1, max_length=1024,
                   pattern=CONDITION_REASON_PATTERN),
        status=Str("True, False or Unknown.", required=True, enum=("True", "False", "Unknown")),
        type_=Str("The aspect this condition is about, in CamelCase.", required=True, max_length=316,
                  pattern=CONDITION_TYPE_PATTERN),
    )


def conditions() -> Field:
    """status.conditions."""
    return Arr(condition(), "Latest observations of the object's state.")


def artifact(description: str = "The artifact produced by the last successful reconciliation.") -> Field:
    """meta.Artifact: a tarball (or file) the source-controller stores and serves over HTTP."""
    return obj(
        description,
        digest=Str("Digest of the file, '<algorithm>:<checksum>'.", required=True, pattern=DIGEST_PATTERN),
        lastUpdateTime=Time("When the artifact was last updated.", required=True),
        metadata=Map(Str(), "Extra metadata, e.g. OCI annotations."),
        path=Str("Path of the file relative to the storage root.", required=True),
        revision=Str("Source revision the artifact was built from, e.g. 'main@sha1:<hash>'.", required=True),
        size=Int("Size of the file in bytes.", format="int64"),
        url=Str("HTTP address the artifact is served at.", required=True),
    )


def local_ref(description: str, *, required: bool = False) -> Field:
    """meta.LocalObjectReference: a same-namespace object by name."""
    return obj(description, required=required, name=Str("Name of the referent.", required=True))


def secret_key_ref(description: str, *, required: bool = False) -> Field:
    """meta.SecretKeyReference: a same-namespace Secret and optionally one key in it."""
    return obj(description, required=required,
               key=Str("Key in the Secret; a default applies when empty."),
               name=Str("Name of the Secret.", required=True))


def kubeconfig_ref() -> Field:
    """meta.KubeConfigReference: where to find the kubeconfig of a remote cluster."""
    message = "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef must be specified"
    return obj(
        "Reconcile on a remote cluster instead of the local one.",
        configMapRef=local_ref("ConfigMap describing a cluster reached with workload identity."),
        secretRef=secret_key_ref("Secret holding a kubeconfig (key 'value' or 'value.yaml' by default)."),
        rules=[("has(self.configMapRef) || has(self.secretRef)", message),
               ("!has(self.configMapRef) || !has(self.secretRef)", message)],
    )


def object_ref(description: str, *, kinds: Iterable[str] | None = None, required: bool = False,
               namespace: bool = True, bounded: bool = False, default_kind: Any = UNSET) -> Field:
    """A reference by apiVersion/kind/name(/namespace), e.g. CrossNamespaceSourceReference.

    ``kinds`` restricts the kind to an enum; ``bounded`` adds the name/namespace length limits some
    kinds declare.
    """
    fields: dict[str, Field] = {
        "apiVersion": Str("API version of the referent."),
        "kind": Str("Kind of the referent.", required=True, default=default_kind,
                    enum=tuple(kinds) if kinds is not None else None),
        "name": Str("Name of the referent.", required=True, min_length=1 if bounded else None,
                    max_length=253 if bounded else None),
    }
    if namespace:
        fields["namespace"] = Str("Namespace of the referent; defaults to the referrer's namespace.",
                                  min_length=1 if bounded else None, max_length=63 if bounded else None)
    return obj(description, required=required, **fields)


def cross_namespace_source_ref(kinds: Iterable[str], description: str = "The source to reconcile from.", *,
                               required: bool = True, bounded: bool = False) -> Field:
    """CrossNamespaceSourceReference: a source object, optionally in another namespace."""
    return object_ref(description, kinds=kinds, required=required, bounded=bounded)


def namespaced_object_kind_ref(description: str, *, required: bool = False) -> Field:
    """NamespacedObjectKindReference: any object by apiVersion/kind/name/namespace."""
    return object_ref(description, required=required)


def dependency_refs() -> Field:
    """spec.dependsOn of Kustomization/HelmRelease (meta.DependencyReference).

    Beyond Flux: an entry may name ``apiVersion`` and ``kind`` to depend on an object of another kind (a
    Kustomization waiting on a HelmRelease, or on any object with a Ready condition); without them the
    dependency is of the same kind, as in Flux. The fields are optional, so Flux's manifests are unchanged.
    """
    return Arr(obj(
        "An object that must be ready first.",
        apiVersion=Str("API version of the dependency when it is of another kind (fluxpy extension)."),
        kind=Str("Kind of the dependency when it is not of the same kind (fluxpy extension)."),
        name=Str("Name of the dependency.", required=True),
        namespace=Str("Namespace of the dependency; defaults to the object's namespace."),
        readyExpr=Str("CEL expression deciding readiness instead of the Ready condition."),
    ), "Objects that must be ready before this one is reconciled.")


def access_from() -> Field:
    """acl.AccessFrom: which namespaces may refer to this object."""
    return obj(
        "Namespaces allowed to use this object (only honoured when cross-namespace refs are allowed).",
        namespaceSelectors=Arr(obj(
            "Selects namespaces by labels.",
            matchLabels=Map(Str(), "Labels a namespace must have."),
        ), "Namespace selectors; any match grants access.", required=True),
    )


def oidc_identities() -> Field:
    """matchOIDCIdentity of keyless cosign verification."""
    return Arr(obj(
        "An accepted OIDC issuer/subject pair (regular expressions).",
        issuer=Str("Regular expression the OIDC issuer must match.", required=True),
        subject=Str("Regular expression the identity subject must match.", required=True),
    ), "Identities accepted for keyless signatures; any match verifies.")


def verification(description: str, *, oidc: bool = True) -> Field:
    """OCI artifact signature verification (cosign or notation)."""
    fields: dict[str, Field] = {}
    if oidc:
        fields["matchOIDCIdentity"] = oidc_identities()
    fields["provider"] = Str("Signature tool to verify with.", required=True, default="cosign",
                             enum=VERIFY_PROVIDERS)
    fields["secretRef"] = local_ref("Secret holding trusted public keys or certificates.")
    return obj(description, **fields)


def common_metadata(description: str) -> Field:
    """Labels and annotations stamped on every object the kind applies."""
    return obj(description,
               annotations=Map(Str(), "Annotations to add."),
               labels=Map(Str(), "Labels to add."))


def selector(description: str) -> Field:
    """kustomize.Selector: which objects a patch targets."""
    return obj(
        description,
        annotationSelector=Str("Annotation selector expression."),
        group=Str("API group."),
        kind=Str("Kind."),
        labelSelector=Str("Label selector expression."),
        name=Str("Name (regular expression)."),
        namespace=Str("Namespace (regular expression)."),
        version=Str("API version."),
    )


def kustomize_patches(description: str = "Strategic merge or JSON6902 patches, optionally targeted.") -> Field:
    """A list of kustomize.Patch."""
    return Arr(obj(
        "A patch and the objects it applies to.",
        patch=Str("Patch document (strategic merge or JSON6902), YAML or JSON.", required=True),
        target=selector("Objects to patch; the patch's own identity when absent."),
    ), description)


def legacy_kustomize_patches() -> dict[str, Field]:
    """The patch fields of kustomize.toolkit.fluxcd.io/v1beta2 and helm.toolkit.fluxcd.io/v2beta2
    post renderers that v1/v2 replaced with ``patches``: ``patchesStrategicMerge``, ``patchesJson6902``."""
    operation = obj(
        "A JSON6902 operation.",
        op=Enum("test", "remove", "add", "replace", "move", "copy", doc="The operation.", required=True),
        path=Str("JSON pointer of the target location.", required=True),
        from_=Str("JSON pointer of the source location (move, copy)."),
        value=Preserve("The value to add, replace or test."),
    )
    return {
        "patchesStrategicMerge": Arr(Preserve("A strategic merge patch.", type="object"),
                                     "Deprecated: strategic merge patches; use patches."),
        "patchesJson6902": Arr(obj(
            "A JSON6902 patch and the objects it applies to.",
            patch=Arr(operation, "The operations.", required=True),
            target=selector("Objects to patch."),
        ), "Deprecated: JSON6902 patches; use patches."),
    }


def kustomize_images(description: str = "Image name/tag/digest overrides.") -> Field:
    """A list of kustomize.Image."""
    return Arr(obj(
        "An image override.",
        digest=Str("Digest to use instead of the tag."),
        name=Str("Image name to match.", required=True),
        newName=Str("Replacement image name."),
        newTag=Str("Replacement tag."),
    ), description)


def label_selector(description: str) -> Field:
    """metav1.LabelSelector."""
    return obj(
        description,
        map_type="atomic",
        matchExpressions=Arr(obj(
            "A requirement on one label.",
            key=Str("Label key.", required=True),
            operator=Str("In, NotIn, Exists or DoesNotExist.", required=True),
            values=Arr(Str(), "Values for In/NotIn.", list_type="atomic"),
        ), "Label requirements, all must hold.", list_type="atomic"),
        matchLabels=Map(Str(), "Labels that must match exactly."),
    )


def interval(description: str = "How often to reconcile.", *, required: bool = True, default: Any = UNSET) -> Field:
    """spec.interval."""
    return Duration(description, required=required, default=default)


def suspend(description: str = "Stop reconciling until unset.") -> Field:
    """spec.suspend."""
    return Bool(description)


def status(description: str = "Observed state.", *, default_generation: bool = True, handled: bool = True,
           **fields: Field) -> Field:
    """status with observedGeneration, conditions and lastHandledReconcileAt plus the kind's own fields.

    Flux defaults a fresh status to ``observedGeneration: -1`` so "never reconciled" differs from 0.
    """
    common: dict[str, Field] = {
        "conditions": conditions(),
        "observedGeneration": Int("The last generation reconciled.", format="int64"),
    }
    if handled:
        common["lastHandledReconcileAt"] = Str("The last reconcile.fluxcd.io/requestedAt value handled.")
    common.update(fields)
    default = {"observedGeneration": -1} if default_generation else UNSET
    return obj(description, default=default, **dict(sorted(common.items())))


#: Printer-column JSON paths of the Ready condition.
READY_STATUS_PATH = '.status.conditions[?(@.type=="Ready")].status'
READY_MESSAGE_PATH = '.status.conditions[?(@.type=="Ready")].message'
AGE_PATH = ".metadata.creationTimestamp"


def ready_columns() -> tuple[PrinterColumn, PrinterColumn]:
    """The Ready and Status printer columns every reconciled kind shows."""
    return (PrinterColumn("Ready", READY_STATUS_PATH), PrinterColumn("Status", READY_MESSAGE_PATH))


def age_column() -> PrinterColumn:
    """The Age printer column."""
    return PrinterColumn("Age", AGE_PATH, "date")


# --- what `fluxpy get` prints between NAME and READY, shared by kinds (flux's get columns) --------------
#: spec.suspend as True/False.
SUSPENDED_COLUMN = Column("SUSPENDED", ("spec.suspend",), "bool")
#: a source's artifact revision, hashes cut to 8 digits.
ARTIFACT_REVISION_COLUMN = Column("REVISION", ("status.artifact.revision",), "hex")
#: what a source's ``reconcile`` reports.
ARTIFACT_REVISION = Column("REVISION", ("status.artifact.revision",))


def source_column(*paths: str, option: str = "show-source") -> Column:
    """SOURCE as ``Kind/namespace/name`` of the first reference found (``get --show-source`` only)."""
    return Column("SOURCE", paths, "ref", option=option)
