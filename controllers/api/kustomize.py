"""kustomize.toolkit.fluxcd.io/v1 (kustomize-controller): Kustomization builds and applies a source path."""
from __future__ import annotations

from controllers.api import meta
from controllers.api.meta import (
    age_column, common_metadata, cross_namespace_source_ref, dependency_refs, interval, kubeconfig_ref,
    kustomize_images, kustomize_patches, local_ref, ready_columns, status, suspend,
)
from controllers.api.enums import DECRYPTION_PROVIDERS
from controllers.api.schema import Arr, Bool, Duration, Enum, Int, Map, Str, Time, derive, obj
from controllers.api.types import Column, Kind, OlderVersion

#: Kinds a Kustomization may take its artifact from.
SOURCE_KINDS = ("OCIRepository", "GitRepository", "Bucket", "ExternalArtifact")

KUSTOMIZATION = Kind(
    group=meta.KUSTOMIZE_GROUP, version="v1", kind="Kustomization", plural="kustomizations",
    singular="kustomization", short_names=("ks",),
    spec_schema=obj(
        "Build a kustomize overlay from a source artifact and apply it with server-side apply.",
        commonMetadata=common_metadata("Labels and annotations added to every applied object."),
        dependsOn=dependency_refs(),
        decryption=obj(
            "Decrypt SOPS-encrypted manifests before applying them.",
            provider=Enum(*DECRYPTION_PROVIDERS, doc="Decryption tool.", required=True),
            secretRef=local_ref("Secret with the decryption keys (age, GPG, cloud KMS credentials)."),
            serviceAccountName=Str("Service account whose cloud identity reaches the KMS."),
        ),
        interval=interval("How often to rebuild and reapply, correcting drift."),
        retryInterval=Duration("Retry interval after a failure; interval when absent."),
        kubeConfig=kubeconfig_ref(),
        path=Str("Directory in the artifact holding kustomization.yaml or plain manifests; root when empty."),
        postBuild=obj(
            "Variable substitution run on the built manifests.",
            substitute=Map(Str(), "Variables to substitute (${name} in the manifests)."),
            substituteFrom=Arr(obj(
                "A ConfigMap or Secret whose data are substitution variables.",
                kind=Enum("Secret", "ConfigMap", doc="Kind of the object.", required=True),
                name=Str("Name of the object (same namespace).", required=True, min_length=1, max_length=253),
                optional=Bool("Do not fail when the object is missing.", default=False),
            ), "Objects to read variables from, later ones winning."),
        ),
        prune=Bool("Delete objects that were applied before but are no longer in the source.", required=True),
        deletionPolicy=Enum("MirrorPrune", "Delete", "WaitForTermination", "Orphan",
                            doc="What happens to applied objects when the Kustomization is deleted."),
        healthChecks=Arr(meta.object_ref("An object whose health gates readiness."),
                         "Objects to wait for besides (or instead of) the applied ones."),
        healthCheckExprs=Arr(obj(
            "CEL expressions judging the health of a custom kind.",
            apiVersion=Str("API version of the kind.", required=True),
            kind=Str("Kind the expressions apply to.", required=True),
            current=Str("True when the object is healthy.", required=True),
            inProgress=Str("True while the object is still progressing."),
            failed=Str("True when the object has failed."),
        ), "Custom health checks for custom kinds."),
        namePrefix=Str("Prefix added to the names of all objects.", min_length=1, max_length=200),
        nameSuffix=Str("Suffix added to the names of all objects.", min_length=1, max_length=200),
        patches=kustomize_patches(),
        images=kustomize_images(),
        serviceAccountName=Str("Service account to impersonate when applying."),
        sourceRef=cross_namespace_source_ref(SOURCE_KINDS, "The source whose artifact to build."),
        suspend=suspend(),
        targetNamespace=Str("Namespace set on all namespaced objects.", min_length=1, max_length=63),
        timeout=Duration("Timeout of build, apply and health checking; interval when absent."),
        force=Bool("Recreate objects whose immutable fields changed.", default=False),
        wait=Bool("Wait for all applied objects to become ready (instead of healthChecks)."),
        components=Arr(Str(), "Kustomize components to include, relative to path."),
        ignoreMissingComponents=Bool("Skip components that do not exist instead of failing."),
    ).schema,
    status_schema=status(
        history=Arr(obj(
            "Statistics about reconciling one snapshot of the applied objects.",
            digest=Str("Checksum of the applied objects.", required=True),
            firstReconciled=Time("When this snapshot was first reconciled.", required=True),
            lastReconciled=Time("When it was last reconciled.", required=True),
            lastReconciledDuration=Str("How long the last reconciliation took.", required=True),
            lastReconciledStatus=Str("Outcome of the last reconciliation.", required=True),
            metadata=Map(Str(), "Extra data, such as the source revision."),
            totalReconciliations=Int("How many times it was reconciled.", required=True, format="int64"),
        ), "Recent snapshots of applied objects, newest first."),
        inventory=obj(
            "The objects applied by the last successful reconciliation.",
            entries=Arr(obj(
                "One applied object.",
                id=Str("'<namespace>_<name>_<group>_<kind>'.", required=True),
                v=Str("API version of the object.", required=True),
            ), "Applied objects.", required=True),
        ),
        lastAppliedOriginRevision=Str("Origin revision (from the artifact metadata) of the last apply."),
        lastAppliedRevision=Str("Source revision of the last successful apply."),
        lastAttemptedRevision=Str("Source revision of the last attempt."),
    ).schema,
    printer_columns=(age_column(), *ready_columns()),
    cli_names=("kustomization", "kustomizations", "ks"),
    source_ref_path="spec.sourceRef", revision=Column("REVISION", ("status.lastAppliedRevision",)),
    columns=(meta.source_column("spec.sourceRef"), Column("REVISION", ("status.lastAppliedRevision",), "hex"),
             meta.SUSPENDED_COLUMN),
    truncate_message=True,
    retry_interval_paths=("spec.retryInterval", "spec.interval"),
    controller="kustomize-controller",
)

#: kustomize.toolkit.fluxcd.io/v1beta2, still served by Flux 2.7 (deprecated): v1 without the fields it
#: added, plus the ones it dropped (validation, patchesStrategicMerge, patchesJson6902).
KUSTOMIZATION = KUSTOMIZATION.serving(OlderVersion("v1beta2", derive(
    KUSTOMIZATION.spec_schema,
    add={"validation": Enum("none", "client", "server", doc="Deprecated and ignored: objects are validated "
                                                            "by a server-side dry run."),
         **meta.legacy_kustomize_patches()},
    remove=("decryption.serviceAccountName", "deletionPolicy", "dependsOn[].readyExpr", "healthCheckExprs",
            "ignoreMissingComponents", "namePrefix", "nameSuffix"))))
