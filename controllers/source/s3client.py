"""A small S3 client over ``http.client``: AWS Signature V4, path-style addressing, http or https.

It speaks what the Bucket reconciler needs from an S3-compatible store (``HeadBucket``, ``ListObjectsV2``
with a prefix and pagination, ``GetObject``) plus the few writes the tests use to fill a bucket
(``CreateBucket``, ``PutObject``, ``DeleteObject``). Without an access key the requests are anonymous.
Errors are :class:`S3Error` with the S3 error code and message, phrased as minio-go phrases them (Flux's
source-controller uses minio-go), and never contain a credential. One client may be used from several
threads: each thread gets its own connection.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DEFAULT_REGION = "us-east-1"

#: Messages minio-go gives responses without a body (HEAD requests), by S3 error code.
_BODYLESS_MESSAGES = {
    "NoSuchBucket": "The specified bucket does not exist.",
    "NoSuchKey": "The specified key does not exist.",
    "AccessDenied": "Access Denied.",
    "Conflict": "Bucket not empty.",
    "PreconditionFailed": "Pre-condition failed.",
}
_BODYLESS_CODES = {403: "AccessDenied", 409: "Conflict", 412: "PreconditionFailed"}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class S3Error(Exception):
    """A failed S3 operation: an error response (``code``/``status``) or a transport failure (``code`` '')."""

    def __init__(self, message: str, *, code: str = "", status: int = 0, region: str = ""):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status
        self.region = region
        """The bucket's region when the server names it (``x-amz-bucket-region``)."""

    @property
    def not_found(self) -> bool:
        return self.code in ("NoSuchKey", "NoSuchBucket")


@dataclasses.dataclass(frozen=True)
class S3Object:
    """One entry of a bucket listing; ``etag`` without its quotes."""

    key: str
    etag: str
    size: int


def validate_endpoint(endpoint: str) -> None:
    """Reject what minio-go rejects: a scheme, a path, or a host that is no IP address or DNS name."""
    if not endpoint:
        raise S3Error("Endpoint:  does not follow ip address or domain name standards.")
    parsed = urllib.parse.urlsplit("//" + endpoint)
    if "://" in endpoint or parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise S3Error("Endpoint url cannot have fully qualified paths.")
    try:
        host, port = parsed.hostname or "", parsed.port
    except ValueError:
        raise S3Error(f"Endpoint: {endpoint} does not follow ip address or domain name standards.") from None
    if port == 0 or not host or not _valid_host(host):
        raise S3Error(f"Endpoint: {endpoint} does not follow ip address or domain name standards.")


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))


def validate_bucket_name(name: str) -> None:
    """Reject bucket names S3 does not allow, with minio-go's messages."""
    if not name.strip():
        raise S3Error("Bucket name cannot be empty", code="InvalidBucketName")
    if len(name) < 3:
        raise S3Error("Bucket name cannot be shorter than 3 characters", code="InvalidBucketName")
    if len(name) > 63:
        raise S3Error("Bucket name cannot be longer than 63 characters", code="InvalidBucketName")
    if _is_ip(name):
        raise S3Error("Bucket name cannot be an ip address", code="InvalidBucketName")
    if ".." in name or ".-" in name or "-." in name:
        raise S3Error("Bucket name contains invalid characters", code="InvalidBucketName")
    if not _BUCKET_NAME.match(name):
        raise S3Error("Bucket name contains invalid characters", code="InvalidBucketName")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def _quote(value: str, safe: str = "") -> str:
    """SigV4 URI encoding: everything but the unreserved characters (and ``safe``) percent-encoded."""
    return urllib.parse.quote(value, safe="-_.~" + safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign_v4(method: str, path: str, query: dict[str, str], headers: dict[str, str], payload_hash: str, *,
            access_key: str, secret_key: str, region: str, now: datetime.datetime | None = None,
            service: str = "s3") -> dict[str, str]:
    """Headers that sign a request with AWS Signature Version 4 (``Authorization``, ``x-amz-date``, ...).

    ``path`` is the already-encoded request path; ``headers`` must hold ``host``.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    signed["x-amz-date"] = amz_date
    signed["x-amz-content-sha256"] = payload_hash
    names = sorted(signed)
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
    canonical = "\n".join([
        method, path, canonical_query,
        "".join(f"{n}:{signed[n]}\n" for n in names),
        ";".join(names), payload_hash,
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret_key).encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload_hash,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, "
                         f"Signature={signature}",
    }


class S3Client:
    """Path-style S3 requests to ``endpoint`` (``host[:port]``), signed when an access key is given.

    ``timeout`` bounds every socket operation; ``deadline`` (a ``time.monotonic()`` value) bounds the whole
    sequence of requests — past it every request fails with "context deadline exceeded", as Go's context.
    """

    def __init__(self, endpoint: str, *, access_key: str = "", secret_key: str = "", region: str = "",
                 secure: bool = True, ssl_context: ssl.SSLContext | None = None, timeout: float = 60.0,
                 deadline: float | None = None):
        validate_endpoint(endpoint)
        self.endpoint, self.secure = endpoint, secure
        self.access_key, self._secret_key = access_key, secret_key
        self.region = region
        self.ssl_context = ssl_context
        self.timeout, self.deadline = timeout, deadline
        self._local = threading.local()
        self._regions: dict[str, str] = {}

    # ------------------------------------------------------------------ operations

    def bucket_exists(self, bucket: str) -> bool:
        """HeadBucket: True when the bucket exists, False when it does not; S3Error otherwise."""
        validate_bucket_name(bucket)
        try:
            self._request("HEAD", bucket)
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return False
            raise
        return True

    def list_objects(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> Iterator[S3Object]:
        """ListObjectsV2 of every key under ``prefix`` (recursive), following continuation tokens."""
        validate_bucket_name(bucket)
        token = ""
        while True:
            query = {"list-type": "2", "encoding-type": "url", "fetch-owner": "false", "max-keys": str(page_size),
                     "prefix": prefix}
            if token:
                query["continuation-token"] = token
            _, _, body = self._request("GET", bucket, query=query)
            root = _parse_xml(body)
            for item in _children(root, "Contents"):
                key = urllib.parse.unquote(_text(item, "Key"))
                yield S3Object(key=key, etag=_trim_etag(_text(item, "ETag")), size=int(_text(item, "Size") or 0))
            if _text(root, "IsTruncated").lower() != "true":
                return
            token = _text(root, "NextContinuationToken")
            if not token:
                raise S3Error(f"listing objects from bucket '{bucket}' is truncated without a continuation token")

    def get_object(self, bucket: str, key: str) -> tuple[bytes, str]:
        """GetObject: the content and the ETag (unquoted)."""
        _, headers, body = self._request("GET", bucket, key)
        return body, _trim_etag(headers.get("etag", ""))

    def get_object_to_file(self, bucket: str, key: str, path: str | os.PathLike) -> str:
        """GetObject into ``path`` (parent directories created); returns the ETag (unquoted)."""
        body, etag = self.get_object(bucket, key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(body)
        os.replace(partial, target)
        return etag

    def create_bucket(self, bucket: str) -> None:
        """CreateBucket (in the client's region)."""
        validate_bucket_name(bucket)
        body = b""
        if self.region and self.region != DEFAULT_REGION:
            body = (f'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                    f"<LocationConstraint>{self.region}</LocationConstraint></CreateBucketConfiguration>").encode()
        self._send("PUT", bucket, "", {}, body, self.region or DEFAULT_REGION)

    def put_object(self, bucket: str, key: str, data: bytes) -> str:
        """PutObject; returns the ETag (unquoted)."""
        _, headers, _ = self._request("PUT", bucket, key, body=data)
        return _trim_etag(headers.get("etag", ""))

    def delete_object(self, bucket: str, key: str) -> None:
        self._request("DELETE", bucket, key)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ------------------------------------------------------------------ transport

    def url(self, bucket: str = "", key: str = "") -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}{self._path(bucket, key)}"

    @staticmethod
    def _path(bucket: str, key: str) -> str:
        if not bucket:
            return "/"
        return f"/{bucket}/" + _quote(key, safe="/") if key else f"/{bucket}/"

    def _signing_region(self, bucket: str) -> str:
        """The region to sign for: the configured one, else the bucket's location (as minio-go finds it)."""
        if self.region:
            return self.region
        if not bucket or not self.access_key:
            return DEFAULT_REGION
        if bucket not in self._regions:
            self._regions[bucket] = self._bucket_location(bucket)
        return self._regions[bucket]

    def _bucket_location(self, bucket: str) -> str:
        try:
            _, _, body = self._send("GET", bucket, "", {"location": ""}, b"", DEFAULT_REGION)
        except S3Error as exc:
            # AccessDenied may be an anonymous or restricted request: let the real request decide.
            if exc.code in ("AccessDenied", "AuthorizationHeaderMalformed", "InvalidRegion"):
                return exc.region or DEFAULT_REGION
            raise
        location = (_parse_xml(body).text or "").strip() if body.strip() else ""
        return {"": DEFAULT_REGION, "EU": "eu-west-1"}.get(location, location)

    def _request(self, method: str, bucket: str, key: str = "", *, query: dict[str, str] | None = None,
                 body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        region = self._signing_region(bucket)
        return self._send(method, bucket, key, query or {}, body, region)

    def _send(self, method: str, bucket: str, key: str, query: dict[str, str], body: bytes,
              region: str) -> tuple[int, dict[str, str], bytes]:
        path = self._path(bucket, key)
        target = path + ("?" + "&".join(f"{_quote(k)}={_quote(v)}" if v else _quote(k)
                                        for k, v in sorted(query.items())) if query else "")
        headers = {"host": self.endpoint, "user-agent": "fluxpy-source-controller"}
        if self.access_key:
            payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
            headers.update(sign_v4(method, path, query, {"host": self.endpoint}, payload_hash,
                                   access_key=self.access_key, secret_key=self._secret_key, region=region))
        if body or method in ("PUT", "POST"):
            headers["content-length"] = str(len(body))
        status, resp_headers, resp_body = self._roundtrip(method, target, headers, body, bucket, key)
        if status >= 300:
            raise _error_from_response(status, resp_headers, resp_body, method, bucket, key)
        return status, resp_headers, resp_body

    def _roundtrip(self, method: str, target: str, headers: dict[str, str], body: bytes, bucket: str,
                   key: str) -> tuple[int, dict[str, str], bytes]:
        label = f'{method.capitalize()} "{self.url(bucket, key)}"'
        for attempt in (1, 2):
            timeout = self._remaining(label)
            conn = self._connection(timeout)
            try:
                conn.request(method, target, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                resp_headers = {k.lower(): v for k, v in resp.getheaders()}
                if resp_headers.get("connection", "").lower() == "close":
                    self.close()
                return resp.status, resp_headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt == 2:  # a kept-alive connection the server closed: one retry on a fresh one
                    raise S3Error(f"{label}: {_describe(exc, self.endpoint)}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    raise S3Error(f"{label}: context deadline exceeded") from None
                raise S3Error(f"{label}: {_describe(exc, self.endpoint)}") from None
        raise AssertionError("unreachable")

    def _remaining(self, label: str) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise S3Error(f"{label}: context deadline exceeded")
        return min(self.timeout, left)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.secure:
                context = self.ssl_context or ssl.create_default_context()
                conn = http.client.HTTPSConnection(self.endpoint, timeout=timeout, context=context)
            else:
                conn = http.client.HTTPConnection(self.endpoint, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn


def _describe(exc: BaseException, endpoint: str) -> str:
    """A transport failure in the words Go's net/http uses, so messages look like Flux's."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "context deadline exceeded"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {endpoint.rsplit(':', 1)[0]}: no such host"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {endpoint}: connect: connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}".lower()
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return "EOF"
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).lower()


def _error_from_response(status: int, headers: dict[str, str], body: bytes, method: str, bucket: str,
                         key: str) -> S3Error:
    code = message = ""
    if body.strip():
        try:
            root = _parse_xml(body)
            code, message = _text(root, "Code"), _text(root, "Message")
        except S3Error:
            message = body.decode(errors="replace")[:1024]
    if not code:
        if status == 404:
            code = "NoSuchKey" if key else "NoSuchBucket"
        else:
            code = _BODYLESS_CODES.get(status, f"{status} {http.client.responses.get(status, '')}".strip())
        message = message or _BODYLESS_MESSAGES.get(code, code)
    return S3Error(message or code, code=code, status=status, region=headers.get("x-amz-bucket-region", ""))


def _parse_xml(body: bytes) -> ET.Element:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise S3Error(f"malformed XML response: {exc}") from None


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in node if child.tag.rsplit("}", 1)[-1] == name]


def _text(node: ET.Element, name: str) -> str:
    found = _children(node, name)
    return (found[0].text or "") if found else ""


def _trim_etag(etag: str) -> str:
    return etag[1:-1] if len(etag) >= 2 and etag.startswith('"') and etag.endswith('"') else etag
