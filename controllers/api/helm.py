"""helm.toolkit.fluxcd.io/v2 (helm-controller): HelmRelease installs and upgrades a Helm chart."""
from __future__ import annotations

from controllers.api import meta
from controllers.api.meta import (
    age_column, common_metadata, dependency_refs, interval, kubeconfig_ref, kustomize_images,
    kustomize_patches, ready_columns, selector, status, suspend, verification,
)
from controllers.api.enums import CHART_RECONCILE_STRATEGIES, CHART_SOURCE_KINDS, CRDS_POLICIES
from controllers.api.schema import Arr, Bool, Duration, Enum, Field, Int, Map, Preserve, Str, Time, derive, obj
from controllers.api.types import Column, Kind, OlderVersion, ReconcileOption

#: Kinds spec.chartRef may name (an existing chart artifact).
CHART_REF_KINDS = ("OCIRepository", "HelmChart", "ExternalArtifact")


def _timeout(action: str) -> Field:
    return Duration(f"Timeout of each Kubernetes operation during {action}; spec.timeout when absent.")


def _strategy(action: str, rule: tuple[str, str]) -> Field:
    return obj(
        f"What to do when {action} fails.",
        name=Enum("RemediateOnFailure", "RetryOnFailure", doc="Remediate per the remediation settings, "
                  "or retry the action after retryInterval.", required=True),
        retryInterval=Duration("Delay before retrying (RetryOnFailure only)."),
        rules=[rule],
    )


def _remediation(action: str, *, upgrade: bool) -> Field:
    fields: dict[str, Field] = {
        "ignoreTestFailures": Bool("Do not remediate when tests fail; test.ignoreFailures when absent."),
        "remediateLastFailure": Bool("Also remediate the last failure once retries are exhausted."),
        "retries": Int(f"How many times to retry a failed {action}; negative for unlimited."),
    }
    if upgrade:
        fields["strategy"] = Enum("rollback", "uninstall", doc="How to remediate a failed upgrade.")
    return obj(f"Remediation of failed {action}s.", **fields)


def _chart_template() -> Field:
    return obj(
        "A template of the HelmChart object the controller creates to fetch the chart.",
        metadata=common_metadata("Labels and annotations of the generated HelmChart."),
        spec=obj(
            "Spec of the generated HelmChart.",
            required=True,
            chart=Str("Chart name or path in the source.", required=True, min_length=1, max_length=2048),
            version=Str("SemVer range of the chart version (HelmRepository only).", default="*"),
            sourceRef=meta.object_ref("The source holding the chart.", kinds=CHART_SOURCE_KINDS,
                                      required=True, bounded=True),
            interval=Duration("How often to check the source for a new chart; the release's interval "
                              "when absent."),
            reconcileStrategy=Enum(*CHART_RECONCILE_STRATEGIES, doc="When to build a new chart artifact.",
                                   default="ChartVersion"),
            valuesFiles=Arr(Str(), "Chart values files merged in order into the chart's values."),
            ignoreMissingValuesFiles=Bool("Skip values files that do not exist instead of failing."),
            verify=verification("Verify the chart's signature (OCI charts only).", oidc=False),
        ),
    )


def _release() -> Field:
    """One entry of status.history: a Helm release as last observed."""
    return obj(
        "A Helm release revision as observed by the controller.",
        apiVersion=Str("API version of the chart."),
        appVersion=Str("Application version of the chart."),
        chartName=Str("Name of the chart.", required=True),
        chartVersion=Str("Version of the chart.", required=True),
        configDigest=Str("Digest of the release values.", required=True),
        deleted=Time("When the release was deleted."),
        digest=Str("Digest of the release object.", required=True),
        firstDeployed=Time("When the release was first deployed.", required=True),
        lastDeployed=Time("When the release was last deployed.", required=True),
        name=Str("Release name.", required=True),
        namespace=Str("Release namespace.", required=True),
        ociDigest=Str("Digest of the OCI chart artifact."),
        status=Str("Helm status of the release.", required=True),
        testHooks=Map(obj(
            "State of one test hook.",
            lastCompleted=Time("When it last completed."),
            lastStarted=Time("When it last started."),
            phase=Str("Its last observed phase."),
        ), "Test hooks of the release by name."),
        version=Int("Release revision number.", required=True),
    )


def _action_switches() -> dict:
    """The switches Helm install and upgrade share."""
    return dict(
        disableWait=Bool("Do not wait for resources to be ready."),
        disableWaitForJobs=Bool("Do not wait for Jobs to complete."),
        disableHooks=Bool("Do not run hooks."),
        disableOpenAPIValidation=Bool("Do not validate rendered manifests against the OpenAPI schema."),
        disableSchemaValidation=Bool("Do not validate values against the chart's JSON schema."),
        disableTakeOwnership=Bool("Do not adopt existing objects not owned by the release."),
    )


def release_source(obj: dict) -> dict | None:
    """A release's source, as flux's ``reconcile hr --with-source`` and the chain ``why``/``trace`` walk:
    the ``spec.chartRef`` (relation "chartRef", its namespace defaulting to the release's), else the HelmChart
    the helm-controller generates from ``spec.chart`` (relation "chart"): ``<namespace>-<name>`` in the chart
    source's namespace."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    spec = obj.get("spec") or {}
    if spec.get("chartRef"):
        ref = spec["chartRef"]
        return {"relation": "chartRef", "kind": ref.get("kind"), "name": ref.get("name"),
                "namespace": ref.get("namespace") or namespace, "apiVersion": ref.get("apiVersion")}
    source_ref = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef")
    if not source_ref:
        return None
    return {"relation": "chart", "kind": "HelmChart", "name": f"{namespace}-{obj['metadata']['name']}",
            "namespace": source_ref.get("namespace") or namespace}


#: HelmRelease. ``source_ref_path`` is ``spec.chart.spec.sourceRef``; ``reconcile --with-source`` follows
#: :func:`release_source` (the chartRef or the generated HelmChart, whose own source comes first).
#: the chart version of the newest release, else the last attempted one (as flux's ``get helmreleases``).
_CHART_VERSION = Column("REVISION", ("status.history[0].chartVersion", "status.lastAttemptedRevision"))

#: ``flux reconcile helmrelease --force / --reset``.
RELEASE_RECONCILE_OPTIONS = (
    ReconcileOption("force", meta.FORCE_REQUEST_ANNOTATION),
    ReconcileOption("reset", meta.RESET_REQUEST_ANNOTATION),
)

HELM_RELEASE = Kind(
    group=meta.HELM_GROUP, version="v2", kind="HelmRelease", plural="helmreleases",
    singular="helmrelease", short_names=("hr",), reconcile_options=RELEASE_RECONCILE_OPTIONS,
    spec_schema=obj(
        "Install a Helm chart and keep the release up to date.",
        chart=_chart_template(),
        chartRef=meta.object_ref("An existing chart artifact to release (instead of chart).",
                                 kinds=CHART_REF_KINDS, bounded=True),
        interval=interval("How often to reconcile the release, correcting drift."),
        kubeConfig=kubeconfig_ref(),
        suspend=suspend(),
        releaseName=Str("Helm release name; '[<targetNamespace>-]<name>' when empty.", min_length=1,
                        max_length=53),
        targetNamespace=Str("Namespace to release into; the object's namespace when empty.", min_length=1,
                            max_length=63),
        storageNamespace=Str("Namespace the Helm storage lives in; the target namespace when empty.",
                             min_length=1, max_length=63),
        dependsOn=dependency_refs(),
        timeout=Duration("Default timeout of each Kubernetes operation (hooks, waits, ...)."),
        maxHistory=Int("How many release revisions Helm keeps; 5 when absent, 0 for unlimited."),
        serviceAccountName=Str("Service account to impersonate for Helm operations.", min_length=1,
                               max_length=253),
        persistentClient=Bool("Reuse one Kubernetes client for the whole reconciliation."),
        driftDetection=obj(
            "Detect and correct changes made to release objects in the cluster.",
            ignore=Arr(obj(
                "JSON pointers to ignore, optionally only on some objects.",
                paths=Arr(Str(), "JSON pointers to ignore.", required=True),
                target=selector("Objects the rule applies to; all when absent."),
            ), "Rules of differences to ignore."),
            mode=Enum("enabled", "warn", "disabled", doc="Correct drift, only report it, or ignore it."),
        ),
        install=obj(
            "Settings of Helm install.",
            timeout=_timeout("install"),
            remediation=_remediation("install", upgrade=False),
            strategy=_strategy("install", ("!has(self.retryInterval) || self.name != 'RemediateOnFailure'",
                                           ".retryInterval cannot be set when .name is 'RemediateOnFailure'")),
            **_action_switches(),
            replace=Bool("Reuse the name of a deleted release still in history."),
            skipCRDs=Bool("Deprecated: use crds=Skip."),
            crds=Enum(*CRDS_POLICIES, doc="What to do with the chart's CRDs; Create when absent."),
            createNamespace=Bool("Create the target namespace if missing."),
        ),
        upgrade=obj(
            "Settings of Helm upgrade.",
            timeout=_timeout("upgrade"),
            remediation=_remediation("upgrade", upgrade=True),
            strategy=_strategy("upgrade", ("!has(self.retryInterval) || self.name == 'RetryOnFailure'",
                                           ".retryInterval can only be set when .name is 'RetryOnFailure'")),
            **_action_switches(),
            force=Bool("Replace objects instead of patching them."),
            preserveValues=Bool("Keep the values of the last release (--reuse-values)."),
            cleanupOnFail=Bool("Delete objects created by a failed upgrade."),
            crds=Enum(*CRDS_POLICIES, doc="What to do with the chart's CRDs; Skip when absent."),
        ),
        test=obj(
            "Run Helm tests after install and upgrade.",
            enable=Bool("Run the tests."),
            filters=Arr(obj(
                "Include or exclude a test by name.",
                name=Str("Test name.", required=True, min_length=1, max_length=253),
                exclude=Bool("Exclude the test instead of selecting it."),
            ), "Which tests to run."),
            ignoreFailures=Bool("Do not fail the release when tests fail."),
            timeout=Duration("Timeout of each test operation; spec.timeout when absent."),
        ),
        rollback=obj(
            "Settings of Helm rollback (upgrade remediation).",
            timeout=_timeout("rollback"),
            disableWait=Bool("Do not wait for resources to be ready."),
            disableWaitForJobs=Bool("Do not wait for Jobs to complete."),
            disableHooks=Bool("Do not run hooks."),
            recreate=Bool("Restart pods of the rolled back objects."),
            force=Bool("Replace objects instead of patching them."),
            cleanupOnFail=Bool("Delete objects created by a failed rollback."),
        ),
        uninstall=obj(
            "Settings of Helm uninstall.",
            timeout=_timeout("uninstall"),
            disableHooks=Bool("Do not run hooks."),
            keepHistory=Bool("Keep the release history after uninstalling."),
            disableWait=Bool("Do not wait for resources to be deleted."),
            deletionPropagation=Enum("background", "foreground", "orphan",
                                     doc="Deletion propagation of the release objects.", default="background"),
        ),
        valuesFrom=Arr(obj(
            "A ConfigMap or Secret key holding values.",
            kind=Enum("Secret", "ConfigMap", doc="Kind of the object.", required=True),
            name=Str("Name of the object (same namespace).", required=True, min_length=1, max_length=253),
            valuesKey=Str("Key holding the values; 'values.yaml' when empty.", max_length=253,
                          pattern=r"^[\-._a-zA-Z0-9]+$"),
            targetPath=Str("Path (as for helm --set) the value is put at; the whole key merged when empty.",
                           max_length=250, pattern=r"^([a-zA-Z0-9_\-.\\\/]|\[[0-9]{1,5}\])+$"),
            optional=Bool("Do not fail when the object or key is missing."),
        ), "Values merged in order, before spec.values."),
        values=Preserve("Values merged last, on top of valuesFrom."),
        postRenderers=Arr(obj(
            "A post renderer run on the rendered manifests.",
            kustomize=obj(
                "Apply kustomize patches and image overrides.",
                patches=kustomize_patches(),
                images=kustomize_images(),
            ),
        ), "Post renderers, applied in order."),
        commonMetadata=common_metadata("Labels and annotations added to every object of the release."),
        rules=[("(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))",
                "either chart or chartRef must be set")],
    ).schema,
    status_schema=status(
        failures=Int("Failed reconciliations since the last success.", format="int64"),
        helmChart=Str("'<namespace>/<name>' of the generated HelmChart."),
        history=Arr(_release(), "Recent releases, newest first."),
        installFailures=Int("Failed installs since the last success.", format="int64"),
        lastAttemptedConfigDigest=Str("Digest of the values of the last attempt."),
        lastAttemptedGeneration=Int("Object generation of the last attempt.", format="int64"),
        lastAttemptedReleaseAction=Enum("install", "upgrade", doc="Release action of the last attempt."),
        lastAttemptedReleaseActionDuration=Str("How long the last release action took."),
        lastAttemptedRevision=Str("Chart version of the last attempt."),
        lastAttemptedRevisionDigest=Str("Digest of the chart artifact of the last attempt."),
        lastAttemptedValuesChecksum=Str("Deprecated: checksum of the values of the last attempt."),
        lastHandledForceAt=Str("The last reconcile.fluxcd.io/forceAt value handled."),
        lastHandledResetAt=Str("The last reconcile.fluxcd.io/resetAt value handled."),
        lastReleaseRevision=Int("Deprecated: revision of the last successful release."),
        observedCommonMetadataDigest=Str("Digest of the commonMetadata of the last release."),
        observedPostRenderersDigest=Str("Digest of the post renderers of the last release."),
        storageNamespace=Str("Namespace of the Helm storage of the current release.", min_length=1,
                             max_length=63),
        upgradeFailures=Int("Failed upgrades since the last success.", format="int64"),
    ).schema,
    printer_columns=(age_column(), *ready_columns()),
    cli_names=("helmrelease", "helmreleases", "hr"),
    source_ref_path="spec.chart.spec.sourceRef",
    source_resolver=release_source,
    revision=_CHART_VERSION,
    columns=(meta.source_column("spec.chartRef", "spec.chart.spec.sourceRef"), _CHART_VERSION, meta.SUSPENDED_COLUMN),
    controller="helm-controller",
)

#: helm.toolkit.fluxcd.io/v2beta2, still served by Flux 2.7 (deprecated): v2 without the fields it added,
#: plus chart.spec.valuesFile and the post renderers' patchesStrategicMerge/patchesJson6902.
HELM_RELEASE = HELM_RELEASE.serving(OlderVersion("v2beta2", derive(
    HELM_RELEASE.spec_schema,
    add={"chart.spec.valuesFile": Str("Deprecated: a values file merged over the chart's values; use "
                                      "valuesFiles."),
         **{f"postRenderers[].kustomize.{name}": field for name, field in meta.legacy_kustomize_patches().items()}},
    remove=("commonMetadata", "dependsOn[].readyExpr", "install.strategy", "upgrade.strategy",
            *(f"{action}.{switch}" for action in ("install", "upgrade")
              for switch in ("disableSchemaValidation", "disableTakeOwnership"))))))
