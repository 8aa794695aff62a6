"""The OCIRepository reconciler (source.toolkit.fluxcd.io/v1): an OCI artifact packaged as an artifact.

As Flux's source-controller:

1. the reference: ``spec.ref.digest`` wins, then ``semver`` (the highest tag satisfying the range, among the
   tags matching ``semverFilter``), then ``tag``, else ``latest``; the revision is ``<tag>@sha256:<digest>``
   (the manifest digest, HEAD falling back to GET) or ``sha256:<digest>`` for a digest reference;
2. when the stored artifact has that revision and ``ignore``/``layerSelector`` did not change, nothing is
   pulled and no new artifact is made;
3. otherwise the manifest is pulled, the layer chosen (``layerSelector.mediaType``, else the first) and either
   extracted — safely: ``..``/absolute paths and escaping links are rejected — and archived with the
   ``.sourceignore`` files and ``spec.ignore`` applied, or copied as is (``operation: copy``); the manifest's
   annotations become ``status.artifact.metadata``.

Credentials: ``spec.secretRef`` and the image pull secrets of ``spec.serviceAccountName`` (Docker config
JSON, as Kubernetes image pull secrets); TLS from ``spec.certSecretRef``; an HTTP CONNECT proxy from
``spec.proxySecretRef`` (``address``, ``username``, ``password``); ``spec.insecure`` allows plain HTTP
and skips certificate verification; ``spec.timeout`` bounds all remote operations. Failures set FetchFailed
(AuthenticationFailed, URLInvalid, ReadOperationFailed, OCIArtifactPullFailed,
OCIArtifactLayerOperationFailed) or StorageOperationFailed with Flux's messages, and keep the last artifact.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
from pathlib import Path

from controllers.api.objects import dig
from controllers.api.source import OCI_REPOSITORY
from controllers.runtime import conditions as cond
from controllers.runtime.controller import ReconcileContext
from controllers.runtime.outcomes import ReconcileError, Success
from controllers.lib import credentials
from controllers.lib.oci import artifact as oci_artifact
from controllers.lib.oci import pullsecrets
from controllers.lib.oci import registry as oci_registry
from controllers.source import common
from controllers.lib.ignore import source_filter
from controllers.lib.oci.registry import OCIError, Reference, RegistryClient
from controllers.lib.semver import InvalidConstraint, InvalidVersion, new_constraint, parse_version
from controllers.source.storage import LATEST_LINK
from controllers.lib.archive import UnsafeArchive, extract_tarball

OCI_PULL_FAILED = "OCIArtifactPullFailed"
OCI_LAYER_OPERATION_FAILED = "OCIArtifactLayerOperationFailed"
LAYER_EXTRACT, LAYER_COPY = "extract", "copy"
#: Helm's chart layer: its tags carry ``_`` for semver's ``+``.
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
_HASH_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def revision_digest(revision: str) -> str:
    """``v1@sha256:abc`` → ``sha256:abc`` (a digest revision is itself)."""
    return revision.rsplit("@", 1)[-1]


def layer_operation(obj: dict) -> str:
    return dig(obj, "spec.layerSelector.operation") or LAYER_EXTRACT


def layer_media_type(obj: dict) -> str:
    return dig(obj, "spec.layerSelector.mediaType") or ""


def select_tag(tags: list[str], constraint: str, tag_filter: str = "", media_type: str = "") -> str:
    """Flux's getTagBySemver: the highest tag (three-part semver, ``v`` allowed) satisfying ``constraint``
    among those matching ``tag_filter``; ValueError worded as Flux when none does."""
    if tag_filter:
        try:
            pattern = re.compile(tag_filter)
        except re.error as exc:
            raise ValueError(f"error parsing regexp: {exc}") from None
        tags = [t for t in tags if pattern.search(t)]
    try:
        wanted = new_constraint(constraint)
    except InvalidConstraint as exc:
        raise ValueError(f"semver '{constraint}' parse error: {exc}") from None
    chart = media_type == HELM_CHART_LAYER
    best = None
    for tag in tags:
        try:
            version = parse_version(tag.replace("_", "+") if chart else tag)
        except InvalidVersion:
            continue
        if wanted.check(version) and (best is None or version > best[0]):
            best = (version, tag)
    if best is None:
        raise ValueError(f"no match found for semver: {constraint}")
    return best[1]


class OCIRepositoryReconciler(common.SourceReconciler):
    """Reconciles OCIRepositories (see the module docstring)."""

    kind = OCI_REPOSITORY
    conditions = common.source_conditions(common.STORAGE_OPERATION_FAILED, common.FETCH_FAILED,
                                          common.ARTIFACT_OUTDATED, common.ARTIFACT_IN_STORAGE,
                                          common.SOURCE_VERIFIED)

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        old = copy.deepcopy(obj)
        common.begin(ctx, obj)
        common.check_stored_artifact(ctx, self.storage, obj, LATEST_LINK)
        workdir = common.work_dir(obj)
        try:
            revision, annotations, layer_file = self._reconcile_source(ctx, obj, workdir)
            self._reconcile_artifact(obj, revision, annotations, workdir, layer_file)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        common.notify(ctx, old, obj, self._stored_message(obj))
        return common.stored(obj, f"stored artifact for digest '{common.artifact_of(obj)['revision']}'")

    # ------------------------------------------------------------------ source

    def _reconcile_source(self, ctx: ReconcileContext, obj: dict, workdir: Path) -> tuple[str, dict, str]:
        """Resolve the revision and, when a new artifact is needed, fetch the layer into ``workdir``.

        Returns (revision, manifest annotations, copied layer file name or "")."""
        if cond.is_false(obj, common.SOURCE_VERIFIED):
            cond.delete(obj, common.SOURCE_VERIFIED)
        spec, url = obj["spec"], obj["spec"]["url"]
        creds = self._credentials(ctx, obj)
        ssl_context = self._ssl_context(ctx, obj)
        provider = spec.get("provider") or "generic"
        if provider != "generic" and creds is None:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED,
                              f"failed to get credential from {provider}: cloud workload identity is not "
                              "supported by fluxpy; use the 'generic' provider with spec.secretRef")
        try:
            proxy = pullsecrets.proxy_address(ctx.kube, obj["metadata"]["namespace"],
                                              dig(obj, "spec.proxySecretRef.name") or "")
        except credentials.SecretError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED,
                              f"failed to get proxy address: {exc}") from None
        try:
            repository = oci_registry.parse_repository_url(url)
        except OCIError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.URL_INVALID,
                              f"URL validation failed for '{url}': {exc}", stalled=True) from None
        client = RegistryClient(repository.registry, credentials=creds, insecure=bool(spec.get("insecure")),
                                ssl_context=ssl_context, timeout=common.timeout_of(obj), proxy=proxy)
        with contextlib.closing(client):
            ref = self._artifact_ref(obj, client, repository)
            revision = self._revision(obj, client, ref)
            if not common.is_up_to_date(obj, revision):
                common.mark_outdated(ctx, obj, f"new revision '{revision}' for '{ref}'")
            if spec.get("verify"):
                self._verify(obj)
            if self._up_to_date(obj, revision):
                cond.delete(obj, common.FETCH_FAILED)
                return revision, {}, ""
            annotations, layer_file = self._pull(obj, client, ref.with_digest(revision_digest(revision)),
                                                 revision, workdir)
        cond.delete(obj, common.FETCH_FAILED)
        return revision, annotations, layer_file

    def _credentials(self, ctx: ReconcileContext, obj: dict) -> oci_registry.Credentials | None:
        """Basic credentials from the pull secrets (``secretRef``, then the service account's) for the URL's
        registry; AuthenticationFailed when a secret cannot be read."""
        spec = obj["spec"]
        try:
            ref = oci_registry.parse_repository_url(spec["url"])
        except OCIError:
            return None  # the URL is reported invalid next
        try:
            return pullsecrets.registry_credentials(ctx.kube, obj["metadata"]["namespace"], ref,
                                                    secret_name=dig(obj, "spec.secretRef.name") or "",
                                                    service_account=spec.get("serviceAccountName") or "")
        except credentials.SecretError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED,
                              f"failed to get credential: {exc}") from None

    def _ssl_context(self, ctx: ReconcileContext, obj: dict):
        """The TLS context of ``certSecretRef`` (None: system CAs, or no verification when ``insecure``)."""
        try:
            return pullsecrets.tls_context(ctx.kube, obj["metadata"]["namespace"],
                                           dig(obj, "spec.certSecretRef.name") or "")
        except credentials.SecretError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED,
                              f"failed to generate transport for '{obj['spec']['url']}': {exc}") from None

    def _artifact_ref(self, obj: dict, client: RegistryClient, repository: Reference) -> Reference:
        """Flux's getArtifactRef: digest, else semver, else tag, else ``latest``."""
        ref = obj["spec"].get("ref") or {}
        if ref.get("digest"):
            return repository.with_digest(ref["digest"])
        if ref.get("semver"):
            try:
                tag = select_tag(client.list_tags(repository.repository), ref["semver"],
                                 ref.get("semverFilter") or "", layer_media_type(obj))
            except (OCIError, ValueError) as exc:
                raise common.fail(obj, common.FETCH_FAILED, common.READ_OPERATION_FAILED,
                                  f"failed to determine the artifact tag for '{obj['spec']['url']}': {exc}") from None
            return Reference(repository.registry, repository.repository, tag)
        return Reference(repository.registry, repository.repository, ref.get("tag") or oci_registry.DEFAULT_TAG)

    @staticmethod
    def _revision(obj: dict, client: RegistryClient, ref: Reference) -> str:
        """``<tag>@<digest>``, or the digest of a digest reference; OCIArtifactPullFailed when unknown."""
        try:
            if ref.digest:
                if not _HASH_RE.match(ref.digest):
                    raise OCIError(f'cannot parse hash: "{ref.digest}"')
                return ref.digest
            return f"{ref.tag}@{client.resolve_digest(ref)}"
        except OCIError as exc:
            raise common.fail(obj, common.FETCH_FAILED, OCI_PULL_FAILED,
                              f"failed to determine artifact digest: {exc}") from None

    @staticmethod
    def _verify(obj: dict) -> None:
        """Signature verification (cosign, notation) is not implemented: SourceVerified=False."""
        verify = obj["spec"]["verify"]
        provider = verify.get("provider") or "cosign"
        if provider == "cosign" and not verify.get("secretRef"):
            provider = "cosign keyless"
        raise common.fail(obj, common.SOURCE_VERIFIED, common.VERIFICATION_ERROR,
                          f"failed to verify the signature using provider '{provider}': signature verification "
                          "is not supported by fluxpy")

    @staticmethod
    def _content_config_changed(obj: dict) -> bool:
        """Whether ``ignore`` or ``layerSelector`` differ from what the stored artifact was built with."""
        status = obj.get("status") or {}
        return (obj["spec"].get("ignore") != status.get("observedIgnore")
                or (obj["spec"].get("layerSelector") or None) != (status.get("observedLayerSelector") or None))

    def _up_to_date(self, obj: dict, revision: str) -> bool:
        return common.is_up_to_date(obj, revision) and not self._content_config_changed(obj)

    def _pull(self, obj: dict, client: RegistryClient, ref: Reference, revision: str,
              workdir: Path) -> tuple[dict, str]:
        """Fetch the manifest and the selected layer; extract it into ``workdir`` or copy it there."""
        url = obj["spec"]["url"]
        try:
            manifest = client.image_manifest(ref)
        except OCIError as exc:
            raise common.fail(obj, common.FETCH_FAILED, OCI_PULL_FAILED,
                              f"failed to pull artifact from '{url}': {exc}") from None

        def layer_failed(message: str) -> ReconcileError:
            return common.fail(obj, common.FETCH_FAILED, OCI_LAYER_OPERATION_FAILED, message)

        try:
            layer = oci_artifact.select_layer(manifest, layer_media_type(obj))
        except OCIError as exc:
            raise layer_failed(str(exc)) from None
        operation = layer_operation(obj)
        if operation not in (LAYER_EXTRACT, LAYER_COPY):
            raise layer_failed(f"unsupported layer operation: {operation}")
        blob = workdir.parent / f"{workdir.name}.layer"
        try:
            try:
                client.download_blob(ref.repository, layer.digest, blob)
            except (OCIError, OSError) as exc:
                verb = "extract layer contents" if operation == LAYER_EXTRACT else "copy layer"
                raise layer_failed(f"failed to {verb} from artifact: {exc}") from None
            if operation == LAYER_COPY:
                name = f"{revision_digest(revision)}.tgz"
                os.replace(blob, workdir / name)
                return manifest.annotations, name
            try:
                extract_tarball(blob, workdir, max_size=-1)
            except (UnsafeArchive, OSError) as exc:
                raise layer_failed(f"failed to extract layer contents from artifact: {exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                blob.unlink()
        return manifest.annotations, ""

    # ------------------------------------------------------------------ artifact

    def _reconcile_artifact(self, obj: dict, revision: str, annotations: dict, workdir: Path,
                            layer_file: str) -> None:
        """Store the fetched content as ``<digest>.tar.gz`` unless the stored artifact is up to date."""
        if self._up_to_date(obj, revision):
            return
        meta = obj["metadata"]
        kind, ns, name = OCI_REPOSITORY.kind, meta["namespace"], meta["name"]
        path = self.storage.artifact_path(kind, ns, name, f"{revision_digest(revision)}.tar.gz")
        try:
            with self.storage.lock(kind, ns, name):
                if layer_operation(obj) == LAYER_COPY:
                    artifact = self.storage.store_file(path, workdir / layer_file)
                else:
                    artifact = self.storage.archive(path, workdir,
                                                    ignore=source_filter(workdir, obj["spec"].get("ignore")))
        except (OSError, ValueError) as exc:
            verb = "copy" if layer_operation(obj) == LAYER_COPY else "archive"
            raise common.fail(obj, common.STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                              f"unable to {verb} artifact to storage: {exc}") from None
        if annotations:
            artifact["metadata"] = dict(annotations)
        common.record_artifact(obj, artifact, revision, {
            "observedIgnore": obj["spec"].get("ignore"),
            "observedLayerSelector": obj["spec"].get("layerSelector") or None,
        })
        url = self.storage.link(path, LATEST_LINK)
        if url:
            obj["status"]["url"] = url

    @staticmethod
    def _stored_message(obj: dict) -> str:
        """The NewArtifact event: revision and URL, plus the origin source/revision annotations when set."""
        artifact = common.artifact_of(obj)
        message = f"stored artifact with revision '{artifact['revision']}' from '{obj['spec']['url']}'"
        metadata = artifact.get("metadata") or {}
        source, revision = metadata.get(oci_artifact.SOURCE_ANNOTATION), metadata.get(oci_artifact.REVISION_ANNOTATION)
        if source and revision:
            message += f", origin source '{source}', origin revision '{revision}'"
        return message


def new_reconciler(args) -> OCIRepositoryReconciler:
    """Factory for ``controllers.components`` (source-controller)."""
    return OCIRepositoryReconciler.from_args(args)
