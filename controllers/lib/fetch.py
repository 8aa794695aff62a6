"""Downloading a source's artifact for a build: HTTP GET of ``status.artifact.url``, digest check, safe
extraction.

For the reconciler::

    fetch_artifact(source["status"]["artifact"], workdir, timeout=spec_timeout)   # then build(workdir, ...)

As Flux's fetcher (fluxcd/pkg/http/fetch): the body is saved to a temporary file and its digest
(``sha256:``, ``sha384:`` or ``sha512:``; a bare hex is sha256) compared with ``artifact.digest`` before
anything is extracted; connection failures, 5xx and 429 answers are retried ``retries`` times with
exponential back-off (5 s to 30 s by default, as Flux); ``hostname`` replaces the URL's host (Flux's
``SOURCE_CONTROLLER_LOCALHOST``). Extraction is :func:`controllers.lib.archive.extract_tarball`, which
refuses absolute paths, ``..``, links leaving the destination and special files, with no size cap (as
Flux's kustomize-controller). ``timeout`` bounds the whole download, retries included.

Failures raise :class:`~controllers.lib.kustomize.errors.ArtifactError` (reason ArtifactFailed) with Flux's
messages: ``failed to download archive from <url> (status: 500 Internal Server Error)``, ``file not
found``, ``failed to verify archive: computed digest doesn't match provided '<digest>' ...``,
``failed to extract archive ...: <why>``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from controllers.lib.kustomize.errors import ArtifactError

DEFAULT_TIMEOUT = 300.0
RETRY_WAIT = (5.0, 30.0)
_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_CHUNK = 1 << 16


class _Retry(Exception):
    """A transient failure worth another attempt; ``message`` is what to report if none is left."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.message, self.wait = message, wait


def fetch_artifact(artifact: dict, dest: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT, retries: int = 0,
                   retry_wait: tuple[float, float] = RETRY_WAIT, hostname: str | None = None) -> Path:
    """Download ``artifact`` (a ``status.artifact``: ``url``, ``digest``), verify it and extract it into
    ``dest`` (created); return ``dest``."""
    from controllers.lib.archive import UnsafeArchive, extract_tarball

    url, digest = artifact.get("url") or "", artifact.get("digest") or ""
    if hostname:
        url = urllib.parse.urlsplit(url)._replace(netloc=hostname).geturl()
    algorithm, expected = _parse_digest(digest)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="fluxpy-fetch-") as tmp:
        archive = Path(tmp) / "artifact.tar.gz"
        for attempt in range(retries + 1):
            try:
                computed = _download(url, archive, algorithm, deadline)
                break
            except _Retry as exc:
                wait = exc.wait if exc.wait is not None else min(retry_wait[0] * (2 ** attempt), retry_wait[1])
                if attempt == retries or time.monotonic() + wait >= deadline:
                    raise ArtifactError(exc.message) from None
                time.sleep(wait)
        if computed != expected:
            raise ArtifactError(f"failed to verify archive: computed digest doesn't match provided '{digest}' "
                                "(check whether file size exceeds max download size)")
        try:
            extract_tarball(archive, dest, max_size=-1)
        except UnsafeArchive as exc:
            raise ArtifactError("failed to extract archive (check whether file size exceeds max download size): "
                                f"{exc}") from None
    return dest


def _parse_digest(digest: str) -> tuple[str, str]:
    if not digest:
        raise ArtifactError("failed to verify archive: empty digest")
    if ":" not in digest:
        digest = "sha256:" + digest
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in _ALGORITHMS:
        raise ArtifactError(f"failed to verify archive: failed to parse digest '{digest}': unsupported digest "
                            "algorithm")
    return algorithm, encoded.lower()


def _download(url: str, target: Path, algorithm: str, deadline: float) -> str:
    """GET ``url`` into ``target``; the hex digest of what was written. Raises _Retry or ArtifactError."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ArtifactError(f"failed to download archive: timed out fetching {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "fluxpy-kustomize-controller"})
    hasher = _ALGORITHMS[algorithm]()
    try:
        with urllib.request.urlopen(request, timeout=remaining) as response, open(target, "wb") as out:
            while True:
                if time.monotonic() > deadline:
                    raise ArtifactError(f"failed to download archive: timed out fetching {url}")
                chunk = response.read1(_CHUNK)  # whatever arrived: a slow server cannot outlast the deadline
                if not chunk:
                    break
                hasher.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        status = f"{exc.code} {http.client.responses.get(exc.code, exc.reason)}"
        if exc.code == 404:
            raise ArtifactError("file not found") from None
        message = f"failed to download archive from {url} (status: {status})"
        if exc.code >= 500 or exc.code == 429:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            raise _Retry(message, float(retry_after) if retry_after and retry_after.isdigit() else None) from None
        raise ArtifactError(message) from None
    except ValueError as exc:  # an address urllib cannot use
        raise ArtifactError(f"failed to create a new request: {exc}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise _Retry(f"failed to download archive: timed out fetching {url}") from None
        raise _Retry(f"failed to download archive: {reason}") from None
    return hasher.hexdigest()
