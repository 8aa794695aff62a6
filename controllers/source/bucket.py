"""The Bucket reconciler (source.toolkit.fluxcd.io/v1): an S3-compatible bucket packaged as an artifact.

As Flux's source-controller with the ``generic`` provider (and ``aws`` with static keys):

1. list the objects under ``spec.prefix`` (ListObjectsV2), leaving out directory markers, the bucket's
   ``.sourceignore`` and what it and ``spec.ignore`` exclude; the revision is ``sha256:<hex>`` of the index
   ``"<key> <etag>\\n"`` in key order, so an unchanged bucket gives an unchanged revision and no new
   artifact (no object is downloaded then);
2. otherwise download every indexed object (in parallel) into a work directory at its key's path — a key
   with a ``..`` component is rejected — and archive it as ``<hex>.tar.gz``.

Credentials come from ``spec.secretRef`` (``accesskey``/``secretkey``), the CA and client certificate from
``spec.certSecretRef``; ``spec.insecure`` uses plain HTTP; ``spec.timeout`` bounds the listing and the
downloads. Failures are FetchFailed with Flux's reasons (AuthenticationFailed for credentials and client
set-up, BucketOperationFailed for what the bucket answers) and keep the last artifact served.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import shutil
import time
from pathlib import Path

from controllers.api.source import BUCKET
from controllers.runtime import conditions as cond
from controllers.runtime.controller import ReconcileContext
from controllers.runtime.outcomes import Success
from controllers.lib import credentials
from controllers.source import common
from controllers.lib.ignore import IGNORE_FILE, Matcher, read_patterns
from controllers.source.s3client import S3Client, S3Error

BUCKET_OPERATION_FAILED = "BucketOperationFailed"
#: Parallel downloads (Flux bounds its goroutines at 100; threads cost more).
MAX_CONCURRENT_FETCHES = 16


class UnsafeObjectKey(ValueError):
    """An object key that would be written outside the work directory."""


def index_digest(index: dict[str, str]) -> str:
    """Flux's digest of an etag index: sha256 over ``"<key> <etag>\\n"`` lines in key order."""
    h = hashlib.sha256()
    for key in sorted(index):
        h.update(f"{key} {index[key]}\n".encode())
    return f"sha256:{h.hexdigest()}"


def object_path(root: Path, key: str) -> Path:
    """Where object ``key`` lands under ``root``; UnsafeObjectKey when a ``..`` component would leave it."""
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts or not parts or "\\" in key or "\x00" in key:
        raise UnsafeObjectKey(f"object key {key!r} escapes the bucket directory")
    return root.joinpath(*parts)


class BucketReconciler(common.SourceReconciler):
    """Reconciles Buckets (see the module docstring)."""

    kind = BUCKET
    conditions = common.source_conditions(common.STORAGE_OPERATION_FAILED, common.FETCH_FAILED,
                                          common.ARTIFACT_OUTDATED, common.ARTIFACT_IN_STORAGE)

    # ------------------------------------------------------------------ main flow

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        old = {"status": dict(obj.get("status") or {})}
        common.begin(ctx, obj)
        common.check_stored_artifact(ctx, self.storage, obj)
        workdir = common.work_dir(obj)
        try:
            client = self._client(ctx, obj)
            try:
                index = self._sync(ctx, obj, client, workdir)
            finally:
                client.close()
            self._store(obj, index, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        bucket = obj["spec"]["bucketName"]
        common.notify(ctx, old, obj, f"stored artifact with {len(index)} fetched files from '{bucket}' bucket")
        return common.stored(obj, f"stored artifact: revision '{common.artifact_of(obj)['revision']}'")

    def _client(self, ctx: ReconcileContext, obj: dict) -> S3Client:
        """An S3 client for the Bucket's endpoint and credentials; FetchFailed (AuthenticationFailed) if not."""
        spec, ns = obj["spec"], obj["metadata"]["namespace"]
        provider = spec.get("provider") or "generic"

        def auth_failed(message: str, *, stalled: bool = False):
            return common.fail(obj, common.FETCH_FAILED, common.AUTHENTICATION_FAILED, message, stalled=stalled)

        access_key = secret_key = ""
        try:
            if spec.get("secretRef"):
                data = credentials.get_secret(ctx.kube, ns, spec["secretRef"]["name"])
                if "accesskey" not in data or "secretkey" not in data:
                    raise credentials.SecretError(f"invalid '{spec['secretRef']['name']}' secret data: required fields "
                                             "'accesskey' and 'secretkey'")
                access_key, secret_key = data["accesskey"].decode(), data["secretkey"].decode()
            ssl_context = None
            if spec.get("certSecretRef"):
                name = spec["certSecretRef"]["name"]
                try:
                    tls = credentials.TLSMaterial.from_secret(credentials.get_secret(ctx.kube, ns, name), name)
                    if tls is None:
                        raise credentials.SecretError("no CA certificate or client certificate pair found")
                    ssl_context = tls.ssl_context()
                except credentials.SecretError as exc:
                    raise credentials.SecretError(f"failed to get TLS config: {exc}") from None
        except credentials.SecretError as exc:
            raise auth_failed(str(exc)) from None
        if spec.get("proxySecretRef"):
            raise auth_failed("spec.proxySecretRef is not supported by fluxpy's Bucket client", stalled=True)
        if spec.get("sts"):
            raise auth_failed("spec.sts is not supported by fluxpy's Bucket client", stalled=True)
        if provider not in ("generic", "aws") or (provider == "aws" and not access_key):
            raise common.fail(obj, common.FETCH_FAILED, common.INVALID_PROVIDER_CONFIGURATION,
                              f"the '{provider}' provider needs cloud workload identity, which fluxpy does not "
                              "support: use the 'generic' provider with spec.secretRef", stalled=True)
        try:
            return S3Client(spec["endpoint"], access_key=access_key, secret_key=secret_key,
                            region=spec.get("region", ""), secure=not spec.get("insecure", False),
                            ssl_context=ssl_context, timeout=common.timeout_of(obj))
        except S3Error as exc:
            raise auth_failed(exc.message) from None

    def _sync(self, ctx: ReconcileContext, obj: dict, client: S3Client, workdir: Path) -> dict[str, str]:
        """The etag index of the bucket; the objects are downloaded into ``workdir`` unless the stored artifact
        already has this revision. Failures are FetchFailed (BucketOperationFailed)."""
        bucket = obj["spec"]["bucketName"]
        try:
            client.deadline = time.monotonic() + common.timeout_of(obj)
            index = self._index(obj, client, workdir)
        except (S3Error, OSError) as exc:
            raise common.fail(obj, common.FETCH_FAILED, BUCKET_OPERATION_FAILED, str(exc)) from None
        revision = index_digest(index)
        artifact = common.artifact_of(obj)
        if artifact and artifact.get("revision") == revision:
            cond.delete(obj, common.FETCH_FAILED)
            return index
        try:
            client.deadline = time.monotonic() + common.timeout_of(obj)
            self._fetch(ctx, obj, client, index, workdir)
        except (S3Error, UnsafeObjectKey, OSError) as exc:
            raise common.fail(obj, common.FETCH_FAILED, BUCKET_OPERATION_FAILED,
                              f"fetch from bucket '{bucket}' failed: {exc}") from None
        if artifact:
            common.mark_outdated(ctx, obj, f"new upstream revision '{index_digest(index)}'")
        cond.delete(obj, common.FETCH_FAILED)
        return index

    @staticmethod
    def _index(obj: dict, client: S3Client, workdir: Path) -> dict[str, str]:
        """Flux's fetchEtagIndex: the bucket must exist; its root ``.sourceignore`` (kept in ``workdir``, so
        it is archived too) and ``spec.ignore`` leave keys out."""
        spec = obj["spec"]
        bucket = spec["bucketName"]
        try:
            exists = client.bucket_exists(bucket)
        except S3Error as exc:
            raise S3Error(f"failed to confirm existence of '{bucket}' bucket: {exc}") from None
        if not exists:
            raise S3Error(f"bucket '{bucket}' not found")
        patterns = []
        try:
            client.get_object_to_file(bucket, IGNORE_FILE, workdir / IGNORE_FILE)
            patterns += read_patterns((workdir / IGNORE_FILE).read_text(errors="replace"))
        except S3Error as exc:
            if not exc.not_found:
                raise S3Error(f"failed to get Etag for '{IGNORE_FILE}' object: {exc}") from None
        if spec.get("ignore") is not None:
            patterns += read_patterns(spec["ignore"])
        matcher = Matcher(patterns)
        index: dict[str, str] = {}
        try:
            for item in client.list_objects(bucket, spec.get("prefix", "")):
                if item.key.endswith("/") or item.key == IGNORE_FILE:
                    continue
                if matcher.excludes(item.key.split("/"), False):
                    continue
                index[item.key] = item.etag
        except S3Error as exc:
            raise S3Error(f"indexation of objects from bucket '{bucket}' failed: listing objects from bucket "
                          f"'{bucket}' failed: {exc}") from None
        return index

    @staticmethod
    def _fetch(ctx: ReconcileContext, obj: dict, client: S3Client, index: dict[str, str], workdir: Path) -> None:
        """Flux's fetchIndexFiles: download every indexed key; a key that disappeared meanwhile is dropped
        from the index, a changed etag updated."""
        bucket = obj["spec"]["bucketName"]
        targets = {}
        for key in index:
            try:
                targets[key] = object_path(workdir, key)
            except UnsafeObjectKey as exc:
                raise UnsafeObjectKey(f"failed to resolve path for '{key}' object: {exc}") from None

        def fetch(key: str) -> tuple[str, str | None]:
            try:
                return key, client.get_object_to_file(bucket, key, targets[key])
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    ctx.log.info(f"indexed object '{key}' disappeared from '{bucket}' bucket")
                    return key, None
                raise S3Error(f"failed to get '{key}' object: {exc}") from None

        workers = max(1, min(MAX_CONCURRENT_FETCHES, len(index)))
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="bucket-fetch") as pool:
            for key, etag in pool.map(fetch, list(index)):
                if etag is None:
                    del index[key]
                elif etag and etag != index[key]:
                    index[key] = etag

    def _store(self, obj: dict, index: dict[str, str], workdir: Path) -> None:
        """Archive ``workdir`` as ``<hex>.tar.gz`` unless the stored artifact has the index's revision."""
        revision = index_digest(index)
        if common.is_up_to_date(obj, revision):
            return
        meta = obj["metadata"]
        path = self.storage.artifact_path(BUCKET.kind, meta["namespace"], meta["name"],
                                          f"{revision.split(':', 1)[1]}.tar.gz")
        try:
            with self.storage.lock(BUCKET.kind, meta["namespace"], meta["name"]):
                artifact = self.storage.archive(path, workdir)
        except (OSError, ValueError) as exc:
            raise common.fail(obj, common.STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                              f"unable to archive artifact to storage: {exc}") from None
        common.record_artifact(obj, artifact, revision, {"observedIgnore": obj["spec"].get("ignore")})


def new_reconciler(args) -> BucketReconciler:
    """Factory for ``controllers.components`` (source-controller)."""
    return BucketReconciler.from_args(args)
