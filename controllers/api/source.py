"""source.toolkit.fluxcd.io/v1 (source-controller) and source.extensions.fluxcd.io/v1beta1 (source-watcher).

Sources fetch content from somewhere (Git, OCI, Helm repositories, buckets), package it as an artifact
and serve it to the appliers; ``status.artifact.revision`` is what ``reconcile`` reports as fetched.
"""
from __future__ import annotations

from controllers.api import meta
from controllers.api.meta import (
    access_from, age_column, artifact, interval, local_ref, namespaced_object_kind_ref, ready_columns,
    status, suspend, verification,
)
from controllers.api.enums import BUCKET_PROVIDERS, CHART_RECONCILE_STRATEGIES, CHART_SOURCE_KINDS, GIT_PROVIDERS, HELM_REPOSITORY_TYPES, OCI_PROVIDERS
from controllers.api.schema import Arr, Bool, Duration, Enum, Field, Str, derive, obj
from controllers.api.types import Column, Kind, OlderVersion, PrinterColumn

VERSION = "v1"
SOURCE_CONTROLLER = "source-controller"
SOURCE_WATCHER = "source-watcher"
#: The kinds an ArtifactGenerator may read from.
GENERATOR_SOURCE_KINDS = ("Bucket", "GitRepository", "OCIRepository")


def _timeout(description: str = "Timeout of one fetch operation.") -> Field:
    return Duration(description, default="60s", hours=False)


def _url_column(path: str = ".spec.url", name: str = "URL") -> PrinterColumn:
    return PrinterColumn(name, path)


# --- GitRepository --------------------------------------------------------------------------------------
def _git_ref(description: str, *, required: bool = False):
    return obj(
        description,
        required=required,
        branch=Str("Branch to check out; ignored when tag, semver, name or commit is set."),
        commit=Str("Commit SHA to check out; takes precedence over every other field."),
        name=Str("Full reference name, e.g. 'refs/heads/main' or 'refs/pull/1/head'."),
        semver=Str("SemVer range the tag must satisfy; takes precedence over tag."),
        tag=Str("Tag to check out; takes precedence over branch."),
    )


def _git_include():
    return obj(
        "Another GitRepository whose artifact is copied into this one.",
        fromPath=Str("Path in the included repository to copy; the whole artifact when empty."),
        repository=local_ref("The GitRepository to include (same namespace).", required=True),
        toPath=Str("Path to copy to; defaults to the included repository's name."),
    )


#: flux's ``get source ...`` columns; HelmChart keeps its SemVer revision whole.
_SOURCE_LISTING = dict(columns=(meta.ARTIFACT_REVISION_COLUMN, meta.SUSPENDED_COLUMN), truncate_message=True)


def _source_kind(kind: str, plural: str, cli_word: str, short_names: tuple[str, ...] = (), **fields) -> Kind:
    """A source.toolkit.fluxcd.io kind: CLI names ``source <word>``, in the ``sources`` group, reporting
    ``status.artifact.revision`` as "fetched", served by the source-controller."""
    singular = kind.lower()
    return Kind(group=meta.SOURCE_GROUP, version=VERSION, kind=kind, plural=plural, singular=singular,
                short_names=short_names,
                cli_names=(f"source {cli_word}", f"sources {cli_word}", singular, plural, *short_names),
                cli_group="sources", revision=meta.ARTIFACT_REVISION, reconciled="fetched revision {revision}",
                controller=SOURCE_CONTROLLER, **{**_SOURCE_LISTING, **fields})


GIT_REPOSITORY = _source_kind(
    "GitRepository", "gitrepositories", "git", ("gitrepo",),
    spec_schema=obj(
        "A Git repository to fetch and package as an artifact.",
        url=Str("Repository address (http, https or ssh).", required=True, pattern=r"^(http|https|ssh)://.*$"),
        secretRef=local_ref("Secret with credentials: username/password, bearertoken, "
                            "identity/known_hosts, or GitHub App keys."),
        provider=Enum(*GIT_PROVIDERS,
                      doc="Authentication provider; 'generic' reads secretRef, others use OIDC/app auth."),
        serviceAccountName=Str("Service account whose identity authenticates to Azure DevOps."),
        interval=interval("How often to check the repository for new revisions."),
        timeout=_timeout("Timeout of Git operations such as clone."),
        ref=_git_ref("What to check out; the default branch when absent."),
        verify=obj(
            "Verify the OpenPGP signature of the checked out commit and/or tag.",
            mode=Enum("head", "HEAD", "Tag", "TagAndHEAD", doc="Which objects must carry a valid signature.",
                      default="HEAD"),
            secretRef=local_ref("Secret with the trusted public keys.", required=True),
        ),
        proxySecretRef=local_ref("Secret with the proxy address and optional credentials."),
        ignore=Str("Extra .gitignore-style patterns of files to leave out of the artifact."),
        suspend=suspend(),
        recurseSubmodules=Bool("Also check out submodules, using the same credentials."),
        include=Arr(_git_include(), "Other GitRepositories to include in the artifact."),
        sparseCheckout=Arr(Str(), "Only check out these directories."),
        rules=[("!has(self.serviceAccountName) || (has(self.provider) && self.provider == 'azure')",
                "serviceAccountName can only be set when provider is 'azure'")],
    ).schema,
    status_schema=status(
        artifact=artifact(),
        includedArtifacts=Arr(artifact("The artifact of an included repository."),
                              "Artifacts of the included repositories."),
        observedIgnore=Str("The ignore patterns of the last artifact."),
        observedInclude=Arr(_git_include(), "The includes of the last artifact."),
        observedRecurseSubmodules=Bool("Whether the last artifact includes submodules."),
        observedSparseCheckout=Arr(Str(), "The sparse checkout directories of the last artifact."),
        sourceVerificationMode=Str("The verification mode of the last verified artifact."),
    ).schema,
    printer_columns=(_url_column(), age_column(), *ready_columns()),
)


# --- OCIRepository --------------------------------------------------------------------------------------
def _layer_selector(description: str):
    return obj(
        description,
        mediaType=Str("Media type of the layer to take; the first layer when empty."),
        operation=Enum("extract", "copy", doc="Extract the layer's tarball, or copy it as is."),
    )


OCI_REPOSITORY = _source_kind(
    "OCIRepository", "ocirepositories", "oci", ("ocirepo",),
    spec_schema=obj(
        "An OCI artifact to pull and package as an artifact.",
        url=Str("Repository address, 'oci://<host>/<path>' without tag.", required=True, pattern=r"^oci://.*$"),
        ref=obj(
            "Which artifact to pull; tag 'latest' when absent.",
            digest=Str("Digest to pull; takes precedence over every other field."),
            semver=Str("SemVer range the tag must satisfy; takes precedence over tag."),
            semverFilter=Str("Regular expression tags must match before the semver range applies."),
            tag=Str("Tag to pull."),
        ),
        layerSelector=_layer_selector("Which layer of the artifact to use."),
        provider=Enum(*OCI_PROVIDERS, doc="Registry authentication provider.",
                      default="generic"),
        secretRef=local_ref("Secret of type kubernetes.io/dockerconfigjson with registry credentials."),
        verify=verification("Verify the artifact's signature before pulling it."),
        serviceAccountName=Str("Service account whose image pull secrets or identity authenticate."),
        certSecretRef=local_ref("Secret with TLS client certificate/key and/or CA (tls.crt, tls.key, ca.crt)."),
        proxySecretRef=local_ref("Secret with the proxy address and optional credentials."),
        interval=interval("How often to check the registry for new artifacts."),
        timeout=_timeout("Timeout of remote operations."),
        ignore=Str("Extra .gitignore-style patterns of files to leave out of the artifact."),
        insecure=Bool("Allow plain HTTP registries."),
        suspend=suspend(),
    ).schema,
    status_schema=status(
        artifact=artifact(),
        observedIgnore=Str("The ignore patterns of the last artifact."),
        observedLayerSelector=_layer_selector("The layer selector of the last artifact."),
        url=Str("The address of the last artifact."),
    ).schema,
    printer_columns=(_url_column(), *ready_columns(), age_column()),
)


# --- HelmRepository -------------------------------------------------------------------------------------
HELM_REPOSITORY = _source_kind(
    "HelmRepository", "helmrepositories", "helm", ("helmrepo",),
    static_ready="Helm repository is Ready", static_ready_when=("spec.type", "oci"),  # never fetched
    spec_schema=obj(
        "A Helm chart repository (HTTP index or OCI registry).",
        url=Str("Repository address.", required=True, pattern=r"^(http|https|oci)://.*$"),
        secretRef=local_ref("Secret with username/password (or dockerconfigjson for OCI)."),
        certSecretRef=local_ref("Secret with TLS client certificate/key and/or CA."),
        passCredentials=Bool("Also send the credentials to hosts other than the repository's."),
        interval=Duration("How often to fetch the index (not used for OCI repositories)."),
        insecure=Bool("Allow plain HTTP OCI registries."),
        timeout=Duration("Timeout of index download.", hours=False),
        suspend=suspend(),
        accessFrom=access_from(),
        type_=Enum(*HELM_REPOSITORY_TYPES, doc="Kind of repository: an HTTP index or an OCI registry."),
        provider=Enum(*OCI_PROVIDERS, doc="OCI registry authentication provider.",
                      default="generic"),
    ).schema,
    status_schema=status(
        artifact=artifact("The last fetched repository index."),
        url=Str("Address the index is served at by the source-controller."),
    ).schema,
    printer_columns=(_url_column(), age_column(), *ready_columns()),
)


# --- HelmChart ------------------------------------------------------------------------------------------
HELM_CHART = _source_kind(
    "HelmChart", "helmcharts", "chart", ("hc",), source_ref_path="spec.sourceRef",
    columns=(Column("REVISION", ("status.artifact.revision",)), meta.SUSPENDED_COLUMN),  # a SemVer, kept whole
    spec_schema=obj(
        "A Helm chart taken from a HelmRepository, GitRepository or Bucket and packaged as an artifact.",
        chart=Str("Chart name in a repository, or path to the chart in a Git/Bucket artifact.", required=True),
        version=Str("SemVer range of the chart version (repository charts only).", default="*"),
        sourceRef=obj(
            "The source holding the chart (same namespace).",
            required=True,
            apiVersion=Str("API version of the source."),
            kind=Enum(*CHART_SOURCE_KINDS, doc="Kind of the source.", required=True),
            name=Str("Name of the source.", required=True),
        ),
        interval=interval("How often to check the source for a new chart."),
        reconcileStrategy=Enum(*CHART_RECONCILE_STRATEGIES,
                               doc="When to build a new artifact: on a new chart version or on any "
                                   "new source revision.", default="ChartVersion"),
        valuesFiles=Arr(Str(), "Values files (paths in the chart) merged in order into the chart's values."),
        ignoreMissingValuesFiles=Bool("Skip values files that do not exist instead of failing."),
        suspend=suspend(),
        verify=verification("Verify the chart's signature (OCI charts only)."),
    ).schema,
    status_schema=status(
        artifact=artifact("The last packaged chart."),
        observedChartName=Str("The chart name of the last build."),
        observedSourceArtifactRevision=Str("The source revision of the last build."),
        observedValuesFiles=Arr(Str(), "The values files of the last build."),
        url=Str("Address the chart is served at by the source-controller."),
    ).schema,
    printer_columns=(
        PrinterColumn("Chart", ".spec.chart"),
        PrinterColumn("Version", ".spec.version"),
        PrinterColumn("Source Kind", ".spec.sourceRef.kind"),
        PrinterColumn("Source Name", ".spec.sourceRef.name"),
        age_column(), *ready_columns(),
    ),
)


# --- Bucket ---------------------------------------------------------------------------------------------
BUCKET = _source_kind(
    "Bucket", "buckets", "bucket",
    spec_schema=obj(
        "An object storage bucket (S3-compatible, GCS or Azure Blob) to package as an artifact.",
        provider=Enum(*BUCKET_PROVIDERS, doc="Storage API and authentication to use.",
                      default="generic"),
        bucketName=Str("Name of the bucket.", required=True),
        endpoint=Str("Storage endpoint host (and port), without scheme.", required=True),
        sts=obj(
            "Security token service used to get temporary credentials.",
            provider=Enum("aws", "ldap", doc="STS flavour.", required=True),
            endpoint=Str("STS address.", required=True, pattern=r"^(http|https)://.*$"),
            secretRef=local_ref("Secret with STS credentials (ldap)."),
            certSecretRef=local_ref("Secret with TLS material for the STS endpoint (ldap)."),
        ),
        insecure=Bool("Use plain HTTP."),
        region=Str("Bucket region."),
        prefix=Str("Only fetch objects whose key starts with this prefix."),
        secretRef=local_ref("Secret with the storage credentials."),
        serviceAccountName=Str("Service account whose cloud identity authenticates."),
        certSecretRef=local_ref("Secret with TLS client certificate/key and/or CA (generic provider)."),
        proxySecretRef=local_ref("Secret with the proxy address and optional credentials."),
        interval=interval("How often to check the bucket for changes."),
        timeout=_timeout("Timeout of fetch operations."),
        ignore=Str("Extra .gitignore-style patterns of objects to leave out of the artifact."),
        suspend=suspend(),
        rules=[
            ("self.provider == 'aws' || self.provider == 'generic' || !has(self.sts)",
             "STS configuration is only supported for the 'aws' and 'generic' Bucket providers"),
            ("self.provider != 'aws' || !has(self.sts) || self.sts.provider == 'aws'",
             "'aws' is the only supported STS provider for the 'aws' Bucket provider"),
            ("self.provider != 'generic' || !has(self.sts) || self.sts.provider == 'ldap'",
             "'ldap' is the only supported STS provider for the 'generic' Bucket provider"),
            ("!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.secretRef)",
             "spec.sts.secretRef is not required for the 'aws' STS provider"),
            ("!has(self.sts) || self.sts.provider != 'aws' || !has(self.sts.certSecretRef)",
             "spec.sts.certSecretRef is not required for the 'aws' STS provider"),
            ("self.provider != 'generic' || !has(self.serviceAccountName)",
             "ServiceAccountName is not supported for the 'generic' Bucket provider"),
            ("!has(self.secretRef) || !has(self.serviceAccountName)",
             "cannot set both .spec.secretRef and .spec.serviceAccountName"),
        ],
    ).schema,
    status_schema=status(
        artifact=artifact(),
        observedIgnore=Str("The ignore patterns of the last artifact."),
        url=Str("Address the artifact is served at by the source-controller."),
    ).schema,
    printer_columns=(_url_column(".spec.endpoint", "Endpoint"), age_column(), *ready_columns()),
)


# --- ExternalArtifact -----------------------------------------------------------------------------------
#: Written by another controller (e.g. source-watcher's ArtifactGenerator); nothing reconciles it, so it
#: cannot be suspended or reconciled. Its CRD ships with source-controller in Flux 2.7.
EXTERNAL_ARTIFACT = _source_kind(
    "ExternalArtifact", "externalartifacts", "external", suspendable=False, reconcilable=False,
    columns=(meta.ARTIFACT_REVISION_COLUMN, meta.source_column("spec.sourceRef", option="")),
    spec_schema=obj(
        "An artifact produced outside the source-controller.",
        sourceRef=namespaced_object_kind_ref("The object that produces this artifact."),
    ).schema,
    status_schema=obj(
        "Observed state, written by the producer.",
        artifact=artifact("The artifact to consume."),
        conditions=meta.conditions(),
    ).schema,
    printer_columns=(age_column(), *ready_columns(), PrinterColumn("Source", ".spec.sourceRef.name")),
)


# --- ArtifactGenerator ----------------------------------------------------------------------------------
_ALIAS_PATTERN = r"^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$"
_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
_ALIAS_REF_PATTERN = r"^@([a-z0-9]([a-z0-9_-]*[a-z0-9])?)$"

#: Suspended with the annotation ``source.extensions.fluxcd.io/reconcile: disabled`` (no spec.suspend);
#: honours reconcile.fluxcd.io/requestedAt.
ARTIFACT_GENERATOR = Kind(
    group=meta.SOURCE_EXTENSIONS_GROUP, version="v1beta1", kind="ArtifactGenerator",
    plural="artifactgenerators", singular="artifactgenerator", short_names=("ag",),
    spec_schema=obj(
        "Compose ExternalArtifacts from files of several sources.",
        sources=Arr(obj(
            "A source to read files from, known in the copy operations as '@<alias>'.",
            alias=Str("Name the copy operations use for this source.", required=True, max_length=63,
                      pattern=_ALIAS_PATTERN),
            kind=Enum(*GENERATOR_SOURCE_KINDS, doc="Kind of the source.", required=True),
            name=Str("Name of the source.", required=True, max_length=253, pattern=_NAME_PATTERN),
            namespace=Str("Namespace of the source; the generator's namespace when empty.", min_length=1,
                          max_length=63, pattern=meta.DNS1123_LABEL_PATTERN),
        ), "Sources to read.", required=True, min_items=1, max_items=1000),
        artifacts=Arr(obj(
            "An ExternalArtifact to produce.",
            name=Str("Name of the ExternalArtifact.", required=True, max_length=253, pattern=_NAME_PATTERN),
            revision=Str("'@<alias>': take the artifact revision from that source.", max_length=64,
                         pattern=_ALIAS_REF_PATTERN),
            originRevision=Str("'@<alias>': record that source's revision as the origin revision.",
                               max_length=64, pattern=_ALIAS_REF_PATTERN),
            copy=Arr(obj(
                "Copy files from a source into the artifact.",
                from_=Str("'@<alias>/<glob>' to copy from.", required=True, max_length=1024,
                          pattern=r"^@([a-z0-9]([a-z0-9_-]*[a-z0-9])?)/(.*)$"),
                to=Str("'@artifact/<path>' to copy to.", required=True, max_length=1024,
                       pattern=r"^@(artifact)/(.*)$"),
                exclude=Arr(Str(), "Glob patterns to skip.", max_items=100),
                strategy=Enum("Overwrite", "Merge",
                              doc="Overwrite the target, or deep-merge YAML files into it."),
            ), "Copy operations, applied in order.", required=True, min_items=1),
        ), "Artifacts to produce.", required=True, min_items=1, max_items=1000),
    ).schema,
    status_schema=obj(
        "Observed state.",
        conditions=meta.conditions(),
        inventory=Arr(obj(
            "A produced ExternalArtifact.",
            digest=Str("Digest of its content.", required=True),
            filename=Str("Its file name in storage.", required=True),
            name=Str("Its name.", required=True),
            namespace=Str("Its namespace.", required=True),
        ), "The ExternalArtifacts this generator produced."),
        lastHandledReconcileAt=Str("The last reconcile.fluxcd.io/requestedAt value handled."),
        observedSourcesDigest=Str("Digest of the source revisions of the last build."),
    ).schema,
    printer_columns=(age_column(), *ready_columns()),
    cli_names=("artifact generator", "artifact generators", "artifacts generator", "artifacts generators",
               "artifactgenerator", "artifactgenerators", "ag"),
    cli_group="", suspendable=False, reconcilable=True,
    revision=Column("REVISION", ("status.observedSourcesDigest",)), reconciled="built revision {revision}",
    columns=(Column("SUSPENDED", ('metadata.annotations["source.extensions.fluxcd.io/reconcile"]',), "disabled"),),
    controller=SOURCE_WATCHER,
)


# --- v1beta2, still served by Flux 2.7 (deprecated) ------------------------------------------------------
# Each states only its difference from v1: the fields v1beta2 had that v1 dropped, minus v1's additions.
def _v1beta2(kind: Kind, *, add: dict[str, Field] | None = None, remove: tuple[str, ...] = ()) -> Kind:
    return kind.serving(OlderVersion("v1beta2", derive(kind.spec_schema, add=add, remove=remove)))


GIT_REPOSITORY = _v1beta2(
    GIT_REPOSITORY,
    add={"accessFrom": access_from(),
         "gitImplementation": Enum("go-git", "libgit2", doc="Deprecated and ignored: go-git is used.",
                                   default="go-git")},
    remove=("provider", "proxySecretRef", "serviceAccountName", "sparseCheckout"))
BUCKET = _v1beta2(BUCKET, add={"accessFrom": access_from()}, remove=("serviceAccountName",))
HELM_CHART = _v1beta2(HELM_CHART, add={"accessFrom": access_from(),
                                       "valuesFile": Str("Deprecated: a values file merged over the chart's "
                                                         "values; use valuesFiles.")})
HELM_REPOSITORY = _v1beta2(HELM_REPOSITORY)
OCI_REPOSITORY = _v1beta2(OCI_REPOSITORY)

SOURCE_KINDS = (OCI_REPOSITORY, BUCKET, GIT_REPOSITORY, HELM_REPOSITORY, HELM_CHART, EXTERNAL_ARTIFACT)
