"""The HelmRepository reconciler (source.toolkit.fluxcd.io/v1), as Flux 2.7's source-controller.

``type: default`` (an HTTP repository): the ``index.yaml`` is downloaded (``spec.timeout``; credentials of
``secretRef``/``certSecretRef``), its revision is the ``sha256:`` digest of the downloaded bytes, and when
that differs from the stored artifact's revision the index is checked (IndexationFailed when it is not one),
normalised — Helm's index rendered as JSON, entries sorted, invalid versions dropped — and stored as
``helmrepository/<ns>/<name>/index-<hex>.yaml``, with ``index.yaml`` linking to it (``status.url``).
Unchanged upstream bytes: no new artifact. Failures: FetchFailed with URLInvalid (stalled),
AuthenticationFailed (a Secret), Failed (the download), IndexationFailed; the last artifact stays served.

``type: oci``: Flux keeps no artifact and no status for these ("static" objects): :meth:`manages` says so,
and the runtime releases them (finalizer removed, artifacts deleted, status emptied). A runtime without that
hook reconciles them here instead, to the same end but with a static Ready condition.
"""
from __future__ import annotations

import copy
import hashlib
import urllib.parse

from controllers.api.meta import FAILED_REASON as FAILED
from controllers.api.source import HELM_REPOSITORY
from controllers.runtime import conditions as cond
from controllers.runtime.controller import ReconcileContext
from controllers.runtime.outcomes import RUNTIME_CONDITIONS, Success
from controllers.source import common, helm_client, helm_index

INDEXATION_FAILED = "IndexationFailed"
INDEX_LINK = "index.yaml"
TYPE_OCI = "oci"
#: What Flux's CLI shows for a HelmRepository of type oci (it has no conditions).
OCI_READY_MESSAGE = "Helm repository is Ready"


def is_oci(repo: dict) -> bool:
    return (repo.get("spec") or {}).get("type") == TYPE_OCI


def human_size(size: int) -> str:
    """go-units HumanSize: decimal units, four significant digits (``1.234kB``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    value, unit = float(size), 0
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{value:.4g}{units[unit]}"


def _url_error(obj: dict, cause: str) -> Exception:
    return common.fail(obj, common.FETCH_FAILED, common.URL_INVALID, f"invalid Helm repository URL: {cause}",
                       stalled=True)


def check_url(obj: dict, url: str) -> None:
    """Flux's URL checks for the default type: not ``oci://``, parsable (URLInvalid, stalled)."""
    if url.startswith("oci://"):
        raise _url_error(obj, "'oci' URL scheme cannot be used with 'default' HelmRepository type")
    try:
        urllib.parse.urlsplit(url).port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise _url_error(obj, f'parse "{url}": {exc}') from None


def check_scheme(obj: dict, url: str) -> None:
    """Helm has getters for http and https only (checked after the credentials, as Flux)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise common.fail(obj, common.FETCH_FAILED, FAILED,
                          f'failed to construct Helm client: scheme "{scheme}" not supported', stalled=True)


class HelmRepositoryReconciler(common.SourceReconciler):
    """Reconciles HelmRepositories (see the module docstring)."""

    kind = HELM_REPOSITORY
    conditions = common.source_conditions(common.STORAGE_OPERATION_FAILED, common.FETCH_FAILED,
                                          common.ARTIFACT_OUTDATED, common.ARTIFACT_IN_STORAGE)

    def manages(self, obj: dict) -> bool:
        """Whether the object gets a finalizer and a status: not for ``type: oci`` (static in Flux)."""
        return not is_oci(obj)

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        if is_oci(obj):
            return self._static(obj)
        old = copy.deepcopy(obj)
        common.begin(ctx, obj)
        common.check_stored_artifact(ctx, self.storage, obj, INDEX_LINK)
        url = obj["spec"].get("url", "")
        check_url(obj, url)
        try:
            access = helm_client.repository_access(ctx.kube, obj)
        except helm_client.AccessError as exc:
            raise common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED, str(exc)) from None
        check_scheme(obj, url)
        try:
            raw = helm_client.download_index(access, url)
        except helm_client.FetchError as exc:
            raise common.fail(obj, common.FETCH_FAILED, FAILED,
                              f"failed to fetch Helm repository index: failed to cache index to temporary file: "
                              f"{exc}") from None
        revision = "sha256:" + hashlib.sha256(raw).hexdigest()
        if not common.is_up_to_date(obj, revision):
            try:
                index = helm_index.load_index(raw)
            except helm_index.IndexError_ as exc:
                raise common.fail(obj, common.FETCH_FAILED, INDEXATION_FAILED,
                                  f"failed to load Helm repository from index YAML: failed to load index: "
                                  f"{exc}") from None
            cond.delete(obj, common.FETCH_FAILED)
            common.mark_outdated(ctx, obj, f"new index revision '{revision}'")
            self._store(obj, revision, index)
        cond.delete(obj, common.FETCH_FAILED)
        size = common.artifact_of(obj).get("size")
        size_text = f"size {human_size(size)}" if size is not None else "unknown size"
        common.notify(ctx, old, obj, f"stored fetched index of {size_text} from '{url}'")
        return common.stored(obj, f"stored artifact: revision '{common.artifact_of(obj)['revision']}'")

    def _store(self, obj: dict, revision: str, index: helm_index.Index) -> None:
        meta = obj["metadata"]
        path = self.storage.artifact_path(self.kind.kind, meta["namespace"], meta["name"],
                                          f"index-{revision.split(':', 1)[1]}.yaml")
        try:
            with self.storage.lock(self.kind.kind, meta["namespace"], meta["name"]):
                artifact = self.storage.store_bytes(path, helm_index.index_json(index))
        except (OSError, ValueError) as exc:
            raise common.fail(obj, common.STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                              f"unable to save artifact to storage: {exc}") from None
        common.record_artifact(obj, artifact, revision)
        url = self.storage.link(path, INDEX_LINK)
        if url:
            obj["status"]["url"] = url

    def _static(self, obj: dict) -> Success:
        """A ``type: oci`` repository under a runtime that reconciles it anyway: no artifact, no URL."""
        meta = obj["metadata"]
        self.storage.remove_all(self.kind.kind, meta["namespace"], meta["name"])
        status = obj.setdefault("status", {})
        for key in ("artifact", "url"):
            status.pop(key, None)
        for type_ in self.conditions.owned:
            if type_ not in RUNTIME_CONDITIONS:
                cond.delete(obj, type_)
        return Success(OCI_READY_MESSAGE, requeue_after=0)

    def release(self, ctx: ReconcileContext, obj: dict) -> None:
        """What Flux does to a ``type: oci`` repository: its artifacts deleted and its status emptied (the
        runtime removes the finalizer)."""
        meta = obj["metadata"]
        self.storage.remove_all(self.kind.kind, meta["namespace"], meta["name"])
        obj["status"] = {}


def new_reconciler(args) -> HelmRepositoryReconciler:
    """Factory for ``controllers.components`` (source-controller)."""
    return HelmRepositoryReconciler.from_args(args)
