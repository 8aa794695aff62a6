"""Downloading a source's artifact: HTTP GET of ``status.artifact.url``, digest check, safe extraction.

For a reconciler::

    try:
        fetch_artifact(source["status"]["artifact"], workdir, timeout=spec_timeout, retries=http_retry)
    except FetchError as exc:   # ArtifactNotFound (404) first, if it means "wait"
        ...                     # the controller's reason, with exc.message

As Flux's fetcher (fluxcd/pkg/http/fetch over hashicorp go-retryablehttp): the body is saved to a temporary
file and its digest (``sha256:``, ``sha384:`` or ``sha512:``; a bare hex is sha256) compared with
``artifact.digest`` before anything is extracted. Connection failures, 429 and 5xx answers but 501 are
retried ``retries`` times (Flux's ``--http-retry``, default 9) after ``min(5 s * 2**n, 30 s)``, or the
``Retry-After`` of a 429/503; other answers are final. The URL's host is replaced by
:func:`localhost_override` unless ``hostname`` is given. Extraction is
:func:`controllers.lib.archive.extract_tarball` (no absolute paths, ``..``, links leaving the destination,
special files; no size cap, as Flux's controllers). ``timeout`` bounds the whole download, retries included.

Failures raise :class:`FetchError` with Flux's messages: ``file not found`` (:class:`ArtifactNotFound`),
``failed to download archive from <url> (status: 403 Forbidden)``, ``failed to download archive: GET <url>
giving up after 10 attempt(s)``, ``failed to verify archive: computed digest doesn't match provided
'<digest>' ...``, ``failed to extract archive ...: <why>``.
"""
from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DEFAULT_TIMEOUT = 300.0
#: Flux's ``--http-retry`` default (kustomize-controller, source-watcher).
DEFAULT_RETRIES = 9
#: go-retryablehttp's RetryWaitMin/RetryWaitMax as Flux sets them.
RETRY_WAIT = (5.0, 30.0)
_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_CHUNK = 1 << 16


class FetchError(Exception):
    """An artifact that cannot be fetched, verified or extracted; ``message`` is Flux's text."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ArtifactNotFound(FetchError):
    """The server answered 404 (Flux's ``ErrFileNotFound``)."""

    def __init__(self):
        super().__init__("file not found")


class _Retry(Exception):
    """A transient failure; ``detail`` ends the giving-up message, ``wait`` is a Retry-After."""

    def __init__(self, detail: str = "", wait: float | None = None):
        super().__init__(detail)
        self.detail, self.wait = detail, wait


def localhost_override(url: str) -> str | None:
    """The host:port that replaces ``url``'s: ``$SOURCE_CONTROLLER_LOCALHOST`` (Flux's), or for a
    source-watcher artifact ``$SOURCE_WATCHER_LOCALHOST`` (fluxpy's, for a source-watcher run apart)."""
    if "//source-watcher" in url:
        return os.environ.get("SOURCE_WATCHER_LOCALHOST") or None
    return os.environ.get("SOURCE_CONTROLLER_LOCALHOST") or None


def fetch_artifact(artifact: dict, dest: str | os.PathLike, *, timeout: float = DEFAULT_TIMEOUT,
                   retries: int = DEFAULT_RETRIES, retry_wait: tuple[float, float] = RETRY_WAIT,
                   hostname: str | None = None, user_agent: str = "fluxpy") -> Path:
    """Download ``artifact`` (a ``status.artifact``: ``url``, ``digest``), verify it and extract it into
    ``dest`` (created); return ``dest``. ``hostname`` None: :func:`localhost_override`; "": none.

    Beyond Flux (which extracts without a cap): the extracted content is capped at
    :data:`~controllers.lib.archive.MAX_UNTAR_SIZE` bytes, so a decompression bomb in an artifact fails the
    reconciliation instead of filling the controller's disk."""
    from controllers.lib.archive import MAX_UNTAR_SIZE, UnsafeArchive, extract_tarball

    url, digest = artifact.get("url") or "", artifact.get("digest") or ""
    host = localhost_override(url) if hostname is None else hostname
    if host:
        url = urllib.parse.urlsplit(url)._replace(netloc=host).geturl()
    algorithm, expected = _parse_digest(digest)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="fluxpy-fetch-") as tmp:
        archive = Path(tmp) / "artifact.tar.gz"
        for attempt in range(retries + 1):
            try:
                computed = _download(url, archive, algorithm, deadline, user_agent)
                break
            except _Retry as exc:
                wait = exc.wait if exc.wait is not None else min(retry_wait[0] * (2 ** attempt), retry_wait[1])
                if attempt == retries or time.monotonic() + wait >= deadline:
                    raise FetchError(f"failed to download archive: GET {url} giving up after {attempt + 1} "
                                     f"attempt(s){exc.detail}") from None
                time.sleep(wait)
        if computed != expected:
            raise FetchError(f"failed to verify archive: computed digest doesn't match provided '{digest}' "
                             "(check whether file size exceeds max download size)")
        try:
            extract_tarball(archive, dest, max_size=MAX_UNTAR_SIZE)
        except UnsafeArchive as exc:
            raise FetchError("failed to extract archive (check whether file size exceeds max download size): "
                             f"{exc}") from None
    return dest


def _parse_digest(digest: str) -> tuple[str, str]:
    if not digest:
        raise FetchError("failed to verify archive: empty digest")
    if ":" not in digest:
        digest = "sha256:" + digest
    algorithm, _, encoded = digest.partition(":")
    if algorithm not in _ALGORITHMS:
        raise FetchError(f"failed to verify archive: failed to parse digest '{digest}': unsupported digest "
                         "algorithm")
    return algorithm, encoded.lower()


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (a number of seconds or an HTTP date), as go-retryablehttp."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _download(url: str, target: Path, algorithm: str, deadline: float, user_agent: str) -> str:
    """GET ``url`` into ``target``; the hex digest of what was written. Raises _Retry or FetchError."""
    timed_out = f"failed to download archive: timed out fetching {url}"
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FetchError(timed_out)
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    hasher = _ALGORITHMS[algorithm]()
    try:
        with urllib.request.urlopen(request, timeout=remaining) as response, open(target, "wb") as out:
            if response.status != 200:
                raise FetchError(f"failed to download archive from {url} (status: {_status(response.status)})")
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(timed_out)
                chunk = response.read1(_CHUNK)  # whatever arrived: a slow server cannot outlast the deadline
                if not chunk:
                    break
                hasher.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ArtifactNotFound() from None
        if exc.code == 429 or (exc.code >= 500 and exc.code != 501):
            after = _retry_after(exc.headers.get("Retry-After")) if exc.headers and exc.code in (429, 503) else None
            raise _Retry(wait=after) from None
        raise FetchError(f"failed to download archive from {url} (status: {_status(exc.code, exc.reason)})") from None
    except ValueError as exc:  # an address urllib cannot use
        raise FetchError(f"failed to create a new request: {exc}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, ssl.SSLCertVerificationError):  # go-retryablehttp does not retry these
            raise FetchError(f'failed to download archive: Get "{url}": {reason}') from None
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise _Retry(f': Get "{url}": timed out') from None
        raise _Retry(f': Get "{url}": {reason}') from None
    return hasher.hexdigest()


def _status(code: int, reason: str = "") -> str:
    return f"{code} {http.client.responses.get(code, reason)}"
