"""The HelmChart reconciler (source.toolkit.fluxcd.io/v1), as Flux 2.7's source-controller.

The chart comes from ``spec.sourceRef``:

- a HelmRepository: ``spec.chart`` is a chart name, ``spec.version`` a version or semver range (``*`` by
  default); HTTP repositories are read through the HelmRepository's stored index, OCI ones through the
  registry (tags listed; ``helm registry login`` and ``helm pull``); credentials are the HelmRepository's;
- a GitRepository or Bucket: ``spec.chart`` is a path in the source's artifact; the chart is packaged with
  the real ``helm`` after its missing dependencies were added (local ones from the source, remote ones from
  their repository — with the credentials of a HelmRepository of the same URL in the namespace).

``valuesFiles`` are merged in order (Flux's merge: maps deep, anything else replaced) into the chart's
``values.yaml``; a missing file fails unless ``ignoreMissingValuesFiles``. The chart version gets build
metadata when the artifact must change although the chart's version did not: ``+<generation>`` with values
files, and with ``reconcileStrategy: Revision`` the source revision's first 12 hex characters
(``+<rev12>[.<generation>]``). The artifact (``helmchart/<ns>/<name>/<chart>-<version>.tgz``, revision = the
version, ``latest.tar.gz`` linking to it) is rebuilt only for a new name/version or a new generation.

Conditions and reasons are Flux's: ArtifactInStorage/Ready ChartPullSucceeded or ChartPackageSucceeded
with the build summary; FetchFailed (SourceUnavailable, NoSourceArtifact, AuthenticationFailed, URLInvalid,
InvalidChartReference — stalled —, ChartPullError) or BuildFailed (ValuesFilesError and MetadataPatchError —
stalled —, DependencyBuildError, ChartPackageError); the last artifact stays served.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

from controllers.api.meta import FAILED_REASON
from controllers.api.objects import dig
from controllers.api.source import BUCKET, GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY
from controllers.runtime import conditions as cond
from controllers.runtime.controller import ReconcileContext, Watch
from controllers.runtime.kube import KubeError
from controllers.runtime.outcomes import ReconcileError, Success
from controllers.runtime.predicates import artifact_revision_changed
from controllers.source import common, helm_build, helm_client, helm_index
from controllers.source.helm_build import Build, BuildError, BuildOptions
from controllers.source.helmrepo import is_oci
from controllers.source.storage import LATEST_LINK
from controllers.lib.archive import UnsafeArchive, extract_tarball
from controllers.lib.helm import HelmCLI, HelmError
from controllers.lib.index import ReferenceIndex

CHART_PULL_SUCCEEDED = "ChartPullSucceeded"
CHART_PACKAGE_SUCCEEDED = "ChartPackageSucceeded"
SOURCE_UNAVAILABLE = "SourceUnavailable"
NO_SOURCE_ARTIFACT = "NoSourceArtifact"
NEW_CHART = "NewChart"
STRATEGY_REVISION = "Revision"
SOURCE_KINDS = {k.kind: k for k in (HELM_REPOSITORY, GIT_REPOSITORY, BUCKET)}


def revision_metadata(kind: str, revision: str) -> str:
    """The build metadata of ``reconcileStrategy: Revision``: the first 12 hex characters of the commit
    (GitRepository ``<ref>@sha1:<hash>``) or of the digest (Bucket ``sha256:<hex>``)."""
    value = revision.rsplit("@", 1)[-1].rsplit(":", 1)[-1]
    if kind == GIT_REPOSITORY.kind and "/" in value:  # legacy "<branch>/<hash>"
        value = value.rsplit("/", 1)[-1]
    return value[:12]


class HelmChartReconciler(common.SourceReconciler):
    """Reconciles HelmCharts (see the module docstring)."""

    kind = HELM_CHART
    conditions = common.source_conditions(common.STORAGE_OPERATION_FAILED, common.FETCH_FAILED,
                                          common.BUILD_FAILED, common.ARTIFACT_OUTDATED,
                                          common.ARTIFACT_IN_STORAGE, common.SOURCE_VERIFIED)

    def __init__(self, storage, server=None):
        super().__init__(storage, server)
        #: chart key -> its source (Kind, namespace, name), noted with the source revision it last observed.
        self.index = ReferenceIndex()

    # ------------------------------------------------------------------ watches

    def watches(self) -> list[Watch]:
        return [Watch(kind, self._charts_for, predicate=artifact_revision_changed) for kind in SOURCE_KINDS.values()]

    def _charts_for(self, source: dict) -> list[str]:
        """Keys of the charts built from ``source`` that have not seen its current revision."""
        revision = dig(source, "status.artifact.revision")
        if not revision:
            return []
        meta = source["metadata"]
        return [key for key in self.index.keys_for((source.get("kind"), meta.get("namespace"), meta["name"]))
                if self.index.note(key) != revision]

    def _remember(self, obj: dict) -> None:
        meta, ref = obj["metadata"], obj["spec"].get("sourceRef") or {}
        self.index.update(f"{meta['namespace']}/{meta['name']}",
                          {(ref.get("kind"), meta["namespace"], ref.get("name"))},
                          note=dig(obj, "status.observedSourceArtifactRevision") or "")

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        super().finalize(ctx, obj)
        self.index.remove(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        old = copy.deepcopy(obj)
        self._remember(obj)
        common.begin(ctx, obj)
        common.check_stored_artifact(ctx, self.storage, obj, LATEST_LINK)
        if cond.is_false(obj, common.SOURCE_VERIFIED):
            cond.delete(obj, common.SOURCE_VERIFIED)
        source = self._source(ctx, obj)
        workdir = common.work_dir(obj)
        try:
            build = self._build(ctx, obj, source, workdir)
            self._store(obj, build)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            self._remember(obj)
        reason = CHART_PACKAGE_SUCCEEDED if build.packaged else CHART_PULL_SUCCEEDED
        outcome = common.stored(obj, build.summary(), reason)
        common.notify(ctx, old, obj, build.summary(), reason)
        return outcome

    # ------------------------------------------------------------------ source

    def _source(self, ctx: ReconcileContext, obj: dict) -> dict:
        ref, namespace = obj["spec"].get("sourceRef") or {}, obj["metadata"]["namespace"]
        kind = SOURCE_KINDS.get(ref.get("kind", ""))
        if kind is None:
            message = (f"failed to get source: unsupported source kind '{ref.get('kind')}', must be one of: "
                       f"[{' '.join(SOURCE_KINDS)}]")
            raise common.fail(obj, common.FETCH_FAILED, "UnsupportedSourceKind", message, stalled=True)
        try:
            source = ctx.kube.get(kind, ref.get("name", ""), namespace)
        except KubeError as exc:
            raise common.fail(obj, common.FETCH_FAILED, SOURCE_UNAVAILABLE,
                              f"failed to get source: {exc.message}") from None
        source.setdefault("kind", kind.kind)
        artifact = dig(source, "status.artifact")
        oci_repository = kind is HELM_REPOSITORY and is_oci(source)
        if (not artifact or not self.storage.has(artifact)) and not oci_repository:
            raise common.wait_for(obj, common.FETCH_FAILED, NO_SOURCE_ARTIFACT,
                                  f"no artifact available for {kind.kind} source '{ref.get('name')}'")
        if artifact:
            obj["status"]["observedSourceArtifactRevision"] = artifact.get("revision")
        return source

    # ------------------------------------------------------------------ build

    def _options(self, obj: dict) -> BuildOptions:
        status = obj.get("status") or {}
        generation = int(obj["metadata"].get("generation") or 0)
        opts = BuildOptions(values_files=list(obj["spec"].get("valuesFiles") or []),
                            ignore_missing_values_files=bool(obj["spec"].get("ignoreMissingValuesFiles")),
                            force=generation != int(status.get("observedGeneration", -1)),
                            cached_values_files=status.get("observedValuesFiles"))
        artifact = common.artifact_of(obj)
        if artifact:
            opts.cached_chart = str(self.storage.local_path(artifact["path"]))
        return opts

    def _build(self, ctx: ReconcileContext, obj: dict, source: dict, workdir: Path) -> Build:
        spec, opts = obj["spec"], self._options(obj)
        self._check_verify(obj)
        out = workdir / "chart.tgz"
        generation = str(obj["metadata"].get("generation") or 0)
        try:
            if source["kind"] == HELM_REPOSITORY.kind:
                timeout = common.timeout_of(source)
                if opts.effective_values_files():
                    opts.version_metadata = generation
                with HelmCLI(timeout) as helm:
                    repo = self._repository(ctx, obj, source, helm)
                    build = helm_build.build_remote(repo, helm, spec.get("chart", ""), spec.get("version") or "",
                                                    out, opts)
            else:
                if spec.get("reconcileStrategy") == STRATEGY_REVISION:
                    opts.version_metadata = revision_metadata(source["kind"], dig(source, "status.artifact.revision"))
                if opts.effective_values_files():
                    opts.version_metadata += ("." if opts.version_metadata else "") + generation
                source_dir = self._unpack_source(obj, source, workdir)
                with HelmCLI(helm_client.DEFAULT_TIMEOUT) as helm:
                    dependencies = helm_build.DependencyManager(self._dependency_resolver(ctx, obj, helm))
                    build = helm_build.build_local(helm, source_dir, spec.get("chart", ""), out, opts, dependencies)
        except BuildError as exc:
            self._observe(ctx, obj, exc.build)
            raise self._build_failure(obj, exc) from None
        self._observe(ctx, obj, build)
        if build.resolved_dependencies and build.complete:
            ctx.log.info(f"resolved {build.resolved_dependencies} chart dependencies")
        return build

    def _check_verify(self, obj: dict) -> None:
        provider = dig(obj, "spec.verify.provider")
        if not provider:
            cond.delete(obj, common.SOURCE_VERIFIED)
            return
        raise common.fail(obj, common.SOURCE_VERIFIED, common.VERIFICATION_ERROR,
                          f"failed to verify the signature using provider '{provider}': signature verification "
                          "of charts is not supported by fluxpy")

    def _repository(self, ctx: ReconcileContext, obj: dict, repo: dict,
                    helm: HelmCLI) -> helm_build.ChartRepository:
        """The chart repository of a HelmRepository source, with its access options."""
        url = repo["spec"].get("url", "")
        try:
            normalized = helm_index.normalize_url(url)
        except ValueError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.URL_INVALID, f"invalid Helm repository URL: {exc}",
                              stalled=True) from None
        try:
            access = helm_client.repository_access(ctx.kube, repo, normalized)
        except helm_client.AccessError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED, str(exc)) from None
        if is_oci(repo):
            if not normalized.startswith("oci://"):
                raise common.fail(obj, common.FETCH_FAILED, FAILED_REASON,
                                  f"failed to construct Helm client: invalid OCI registry URL: {normalized}",
                                  stalled=True)
            oci = helm_client.OCIChartRepository(access, helm)
            try:
                oci.login()
            except HelmError as exc:
                raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED,
                                  f"failed to login to OCI registry: {exc}") from None
            return oci
        index_file = self.storage.local_path(dig(repo, "status.artifact.path"))
        return helm_client.HTTPChartRepository(access, index_file)

    def _unpack_source(self, obj: dict, source: dict, workdir: Path) -> Path:
        source_dir = workdir / "source"
        try:
            extract_tarball(self.storage.local_path(dig(source, "status.artifact.path")), source_dir, max_size=-1)
        except (UnsafeArchive, OSError, ValueError) as exc:
            raise common.fail(obj, common.FETCH_FAILED, FAILED_REASON, f"artifact untar error: {exc}") from None
        return source_dir

    def _dependency_resolver(self, ctx: ReconcileContext, obj: dict, helm: HelmCLI):
        """Flux's namespaced chart repository callback: a HelmRepository of the same URL in the chart's
        namespace lends its credentials (and stored index); otherwise the repository is used anonymously."""
        namespace = obj["metadata"]["namespace"]

        def resolve(url: str) -> helm_build.ChartRepository:
            repos = ctx.kube.list(HELM_REPOSITORY, namespace).get("items") or []
            repo = next((r for r in repos if helm_index.normalize_url(dig(r, "spec.url") or "") == url), None)
            if repo is None:
                repo = {"metadata": {"namespace": namespace}, "spec": {"url": url, "timeout": "60s"}}
            access = helm_client.repository_access(ctx.kube, repo, url)
            if url.startswith("oci://"):
                oci = helm_client.OCIChartRepository(access, helm)
                oci.login()
                return oci
            artifact = dig(repo, "status.artifact")
            index_file = self.storage.local_path(artifact["path"]) if self.storage.has(artifact) else None
            return helm_client.HTTPChartRepository(access, index_file)
        return resolve

    def _observe(self, ctx: ReconcileContext, obj: dict, build: Build | None) -> None:
        """Flux's observeChartBuild: a new chart name/version is reported as being built."""
        if build is None or not build.has_metadata:
            return
        artifact = common.artifact_of(obj)
        if build.name != dig(obj, "status.observedChartName") or (artifact or {}).get("revision") != build.version:
            if artifact:
                cond.mark_true(obj, common.ARTIFACT_OUTDATED, NEW_CHART, build.summary())
            common.progressive(ctx, obj, f"building artifact: {build.summary()}")
        if build.complete:
            cond.delete(obj, common.FETCH_FAILED)
            cond.delete(obj, common.BUILD_FAILED)

    @staticmethod
    def _build_failure(obj: dict, exc: BuildError) -> ReconcileError:
        if exc.reason in helm_build.BUILD_REASONS:
            cond.delete(obj, common.FETCH_FAILED)
            condition = common.BUILD_FAILED
        else:
            cond.delete(obj, common.BUILD_FAILED)
            condition = common.FETCH_FAILED
        return common.fail(obj, condition, exc.reason.reason, str(exc), stalled=exc.persistent)

    # ------------------------------------------------------------------ artifact

    def _store(self, obj: dict, build: Build) -> None:
        meta = obj["metadata"]
        current = common.artifact_of(obj)
        if current and str(self.storage.local_path(current["path"])) == build.path:
            self._record(obj, build)
            return
        path = self.storage.artifact_path(self.kind.kind, meta["namespace"], meta["name"],
                                          f"{build.name}-{build.version}.tgz")
        try:
            with self.storage.lock(self.kind.kind, meta["namespace"], meta["name"]):
                artifact = self.storage.store_file(path, build.path)
        except (OSError, ValueError) as exc:
            raise common.fail(obj, common.STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                              f"unable to copy Helm chart to storage: {exc}") from None
        common.record_artifact(obj, artifact, build.version)
        self._record(obj, build)
        url = self.storage.link(path, LATEST_LINK)
        if url:
            obj["status"]["url"] = url

    @staticmethod
    def _record(obj: dict, build: Build) -> None:
        status = obj["status"]
        status["observedChartName"] = build.name
        if obj["spec"].get("ignoreMissingValuesFiles"):
            status["observedValuesFiles"] = build.values_files or []
        else:
            status.pop("observedValuesFiles", None)


def new_reconciler(args) -> HelmChartReconciler:
    """Factory for ``controllers.components`` (source-controller)."""
    return HelmChartReconciler.from_args(args)
