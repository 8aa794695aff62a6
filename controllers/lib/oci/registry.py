"""An OCI distribution client over ``http.client`` (Flux's artifact format on top of it: ``artifact.py``).

The client speaks the registry HTTP API v2 as go-containerregistry (what Flux uses) does:

- references parse like ``name.ParseReference`` (``docker.io`` → ``index.docker.io``, ``library/``);
- the scheme is https, or http for ``insecure`` and local registries (loopback, RFC 1918, ``*.local``),
  which are still tried over https first;
- ``GET /v2/`` finds the challenge: ``Bearer realm=…,service=…`` → a token for the repository scope
  (with basic credentials when given, anonymous otherwise), ``Basic`` → the credentials on every request;
- manifests (OCI image manifest and index, Docker v2 manifest and list), blobs (digest-verified, redirects
  followed without credentials to other hosts), tag listing (with ``Link`` pagination), blob uploads
  (POST + monolithic PUT) and manifest pushes;
- one deadline bounds every operation of a client (``timeout``); errors read like Go's
  (``GET <url>: MANIFEST_UNKNOWN: manifest unknown``) and never contain credentials.

Credentials come from ``<username>[:<password>]`` (``--creds``) or a Docker config JSON (the
``.dockerconfigjson`` of a ``kubernetes.io/dockerconfigjson`` Secret, or ``~/.docker/config.json``).
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import fnmatch
import hashlib
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import time
import urllib.parse
from typing import Any, BinaryIO, Callable, Iterable

from controllers import __version__
from controllers.lib.archive import file_digest

USER_AGENT = f"fluxpy/{__version__}"

# --- media types ---------------------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

OCI_PREFIX = "oci://"
DOCKER_HUB = "index.docker.io"
DEFAULT_TAG = "latest"
#: Tag suffixes cosign uses for attestations, SBOMs and signatures (left out of listings).
COSIGN_SUFFIXES = (".att", ".sbom", ".sig")

_CHUNK = 1 << 16
_MAX_REDIRECTS = 5
#: At most this long for the https probe of a registry that may also speak plain http.
_PROBE_TIMEOUT = 10.0


# --- errors --------------------------------------------------------------------------------------------
class OCIError(Exception):
    """A failed registry operation; the message never contains credentials."""


class InvalidReference(OCIError, ValueError):
    """A reference or URL that does not parse."""


class RegistryError(OCIError):
    """The registry answered with an error status."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()):
        super().__init__(message)
        self.status, self.codes = status, codes

    @property
    def not_found(self) -> bool:
        return self.status == 404 or any(c in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN")
                                         for c in self.codes)


class AuthenticationError(RegistryError):
    """The registry refused the credentials (401/403, or the token service did)."""


class DeadlineExceeded(OCIError, TimeoutError):
    """The client's deadline passed."""


# --- references ----------------------------------------------------------------------------------------
_REPOSITORY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_LOCAL_RE = re.compile(r".*\.local(?:host)?(?::\d{1,5})?$")


@dataclasses.dataclass(frozen=True)
class Reference:
    """``<registry>/<repository>[:<tag>][@<digest>]`` as go-containerregistry parses it."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, value: str, *, default_tag: str = DEFAULT_TAG) -> "Reference":
        """Parse an image reference; a reference without tag and digest gets ``default_tag``."""
        rest, digest = value, ""
        if "@" in value:
            rest, _, digest = value.partition("@")
            if not _DIGEST_RE.match(digest):
                raise InvalidReference(f"could not parse reference: {value}")
        repo_part, tag = rest, ""
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            repo_part, tag = rest[:colon], rest[colon + 1:]
            if not _TAG_RE.match(tag):
                raise InvalidReference(f"could not parse reference: {value}")
        registry, repository = split_repository(repo_part)
        if not tag and not digest:
            tag = default_tag
        return cls(registry, repository, tag, digest)

    @classmethod
    def repository_of(cls, value: str) -> "Reference":
        """A repository without tag or digest (``name.NewRepository``)."""
        registry, repository = split_repository(value)
        return cls(registry, repository)

    @property
    def name(self) -> str:
        """``<registry>/<repository>`` (``ref.Context().Name()``)."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when set, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str) -> "Reference":
        if not _TAG_RE.match(tag):
            raise InvalidReference(f"invalid tag {tag!r}")
        return Reference(self.registry, self.repository, tag, "")

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, "", digest)

    def __str__(self) -> str:
        """``name@digest``, ``name:tag``, or just the name for a repository (neither set)."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag}" if self.tag else self.name


def split_repository(value: str) -> tuple[str, str]:
    """``host[:port]/path`` → (registry, repository), with Docker Hub's defaults; InvalidReference if bad."""
    first, sep, rest = value.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, value
    if registry == "docker.io":
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not repository:
        raise InvalidReference(f"a repository name must be specified: {value}")
    bad = [c for c in repository if c not in _REPOSITORY_CHARS]
    if bad:
        raise InvalidReference(f"repository can only contain the characters `{_REPOSITORY_CHARS}`: {repository}")
    if not registry or registry != registry.strip() or "/" in registry:
        raise InvalidReference(f"registries must be valid RFC 3986 URI authorities: {registry}")
    return registry, repository


def strip_oci_prefix(url: str) -> str:
    """``oci://host/repo[:tag]`` → ``host/repo[:tag]``; InvalidReference without the prefix."""
    if not url.startswith(OCI_PREFIX):
        raise InvalidReference("URL must be in format 'oci://<domain>/<org>/<repo>'")
    return url[len(OCI_PREFIX):]


def parse_artifact_url(url: str) -> Reference:
    """``oci://host/repo[:tag|@digest]`` → a Reference (``oci.ParseArtifactURL``)."""
    address = strip_oci_prefix(url)
    try:
        return Reference.parse(address)
    except InvalidReference as exc:
        raise InvalidReference(f"'{url}' invalid URL: {exc}") from None


def parse_repository_url(url: str) -> Reference:
    """``oci://host/repo`` (no tag, no digest) → a repository Reference, as the OCIRepository URL."""
    address = strip_oci_prefix(url)
    if "@" in address:
        raise InvalidReference(f"URL must not contain a digest; remove '@{address.split('@', 1)[1]}'")
    _, _, path = address.partition("/")
    if ":" in path:
        raise InvalidReference(f"URL must not contain a tag; remove ':{path.split(':', 1)[1]}'")
    return Reference.repository_of(address)


def http_allowed(registry: str) -> bool:
    """Whether plain HTTP may be used without ``insecure``: localhost, loopback, RFC 1918, ``*.local``."""
    host = registry
    if host.startswith("["):
        host = host[1:].split("]")[0]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if host == "localhost" or _LOCAL_RE.match(registry):
        return True
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return ip.is_loopback or ip.is_private
    return False


# --- credentials ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Credentials:
    """Basic credentials (or an identity token) for one registry."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:  # never print secrets
        return f"Credentials(username={self.username!r}, password=***)"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def parse_creds(creds: str) -> Credentials:
    """``<username>[:<password>]`` (``--creds``); ValueError when the username is empty."""
    username, _, password = creds.partition(":")
    if not username:
        raise ValueError("invalid credentials: the username must not be empty")
    return Credentials(username, password)


def _docker_key(key: str) -> tuple[str, str]:
    """A docker config ``auths`` key → (host, path prefix), scheme and the ``/v1/``-style suffix dropped."""
    key = re.sub(r"^[a-z]+://", "", key.strip())
    host, _, path = key.partition("/")
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        host, path = DOCKER_HUB, "" if path.rstrip("/") in ("v1", "v2", "") else path
    path = re.sub(r"^v[12]/?$", "", path.rstrip("/"))
    return host, path


def credentials_from_docker_config(config: bytes | str | dict, ref: Reference) -> Credentials | None:
    """The entry of a Docker config JSON (``{"auths": …}`` or the old ``.dockercfg`` map) for ``ref``.

    Keys match on the host (``*`` globs allowed, as Kubernetes' credential keyring) and a path prefix of
    the repository; the most specific key wins. ValueError for malformed JSON (the message names no value).
    """
    if not isinstance(config, dict):
        try:
            config = json.loads(config)
        except (TypeError, ValueError):
            raise ValueError("invalid docker config JSON") from None
    if not isinstance(config, dict):
        raise ValueError("invalid docker config JSON")
    auths = config.get("auths") if isinstance(config.get("auths"), dict) else config
    best: tuple[int, Credentials] | None = None
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        host, path = _docker_key(key)
        if not fnmatch.fnmatchcase(ref.registry, host):
            continue
        if path and not (ref.repository == path or ref.repository.startswith(path + "/")):
            continue
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"]).decode()
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"invalid auth entry for {key!r} in docker config JSON") from None
            username, _, password = decoded.partition(":")
        creds = Credentials(username, password, entry.get("identitytoken") or "")
        score = len(path) * 2 + (0 if "*" in host else 1)
        if best is None or score > best[0]:
            best = (score, creds)
    return best[1] if best else None


def docker_config_json(server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` of a registry Secret, formatted as Flux's ``MakeRegistrySecret`` does."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return go_json({"auths": {server: {"username": username, "password": password, "auth": auth}}}, indent=2).decode()


def local_docker_credentials(ref: Reference) -> Credentials | None:
    """Credentials for ``ref`` from ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json`` (no helpers)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(directory, "config.json")
    try:
        with open(path, "rb") as f:
            return credentials_from_docker_config(f.read(), ref)
    except (OSError, ValueError):
        return None


# --- descriptors and manifests -------------------------------------------------------------------------
@dataclasses.dataclass
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict) -> "Descriptor":
        return cls(data.get("mediaType", ""), data.get("digest", ""), int(data.get("size") or 0),
                   data.get("annotations"), data.get("platform"))

    def to_json(self) -> dict:
        """Go's field order (mediaType, size, digest, annotations)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclasses.dataclass
class Manifest:
    """A manifest as fetched: raw bytes, media type, digest and the parsed document."""

    raw: bytes
    media_type: str
    digest: str
    data: dict

    @classmethod
    def parse(cls, raw: bytes, media_type: str = "") -> "Manifest":
        try:
            data = json.loads(raw)
        except ValueError:
            raise OCIError("failed to parse manifest: invalid JSON") from None
        if not isinstance(data, dict):
            raise OCIError("failed to parse manifest: not a JSON object")
        media_type = data.get("mediaType") or media_type.split(";")[0].strip() or OCI_MANIFEST
        return cls(raw, media_type, sha256_digest(raw), data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES or ("manifests" in self.data and "layers" not in self.data)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.data.get("annotations") or {})

    @property
    def config(self) -> Descriptor:
        return Descriptor.from_json(self.data.get("config") or {})

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.data.get("layers") or []]

    @property
    def manifests(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.data.get("manifests") or []]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def go_json(value: Any, *, indent: int | None = None) -> bytes:
    """JSON as Go's encoding/json writes it: compact, map keys sorted, ``<>&`` and U+2028/9 escaped."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(value, separators=separators, ensure_ascii=False, indent=indent)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


# --- the client ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    url: str


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…"`` → ("bearer", {realm, service, …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest)}
    for k, v in re.findall(r'(\w+)\s*=\s*([^",\s]+)', rest):
        params.setdefault(k.lower(), v)
    return scheme.lower(), params


def describe_network_error(exc: BaseException, netloc: str) -> str:
    """A transport failure in the words Go's net/http uses (``context deadline exceeded``, ``dial tcp ...:
    connect: connection refused``, ``tls: ...``), so messages read like Flux's."""
    if isinstance(exc, DeadlineExceeded) or isinstance(exc, (socket.timeout, TimeoutError)):
        return "context deadline exceeded"
    if isinstance(exc, ConnectionRefusedError):
        return f"dial tcp {netloc}: connect: connection refused"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {netloc.rsplit(':', 1)[0]}: no such host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {(exc.reason or str(exc)).lower().replace('_', ' ')}"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError)):
        return "EOF"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class RegistryClient:
    """One registry, one set of credentials, one deadline. Not thread-safe: one per operation/thread."""

    def __init__(self, registry: str, *, credentials: Credentials | None = None, insecure: bool = False,
                 ssl_context: ssl.SSLContext | None = None, timeout: float | None = 60.0,
                 user_agent: str = USER_AGENT, proxy: str = ""):
        self.registry = registry
        self._proxy = _parse_proxy(proxy) if proxy else None
        self.credentials = credentials
        self.insecure = insecure
        self.user_agent = user_agent
        self.deadline = None if timeout is None else time.monotonic() + timeout
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            if insecure:
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
        self._ssl = ssl_context
        self._scheme: str | None = None
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, str] = {}
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("context deadline exceeded")
        return left

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._conns.get(key)
        if conn is None:
            timeout = self._remaining()
            address = f"{self._proxy[0]}:{self._proxy[1]}" if self._proxy else netloc
            if scheme == "https":
                conn = http.client.HTTPSConnection(address, timeout=timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(address, timeout=timeout)
            if self._proxy:  # every request goes through a CONNECT tunnel, as Go's transport does for https
                conn.set_tunnel(netloc, headers=self._proxy[2])
            self._conns[key] = conn
        return conn

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._conns.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None = None,
                  *, sink: BinaryIO | None = None, probe: bool = False) -> _Response:
        """One HTTP request (one retry on a stale kept-alive connection); the body goes to ``sink`` when
        given and the status is 200."""
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):
            reused = (parts.scheme, parts.netloc) in self._conns
            try:
                conn = self._connection(parts.scheme, parts.netloc)
                timeout = self._remaining()
                if probe:
                    timeout = min(timeout or _PROBE_TIMEOUT, _PROBE_TIMEOUT)
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                if hasattr(body, "seek"):
                    body.seek(0)  # type: ignore[union-attr]
                conn.request(method, target, body=body, headers={"User-Agent": self.user_agent, **headers})
                resp = conn.getresponse()
                if sink is not None and resp.status == 200 and method == "GET":
                    while True:
                        if conn.sock is not None:
                            conn.sock.settimeout(self._remaining())
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        sink.write(chunk)
                    data = b""
                else:
                    data = resp.read()
                if resp.will_close:
                    self._drop(parts.scheme, parts.netloc)
                return _Response(resp.status, resp.reason, resp.headers, data, url)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as exc:
                self._drop(parts.scheme, parts.netloc)
                if reused and attempt == 0 and sink is None:
                    continue
                raise OCIError(f'{method.title()} "{url}": {describe_network_error(exc, parts.netloc)}') from None
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                self._drop(parts.scheme, parts.netloc)
                raise OCIError(f'{method.title()} "{url}": {describe_network_error(exc, parts.netloc)}') from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ ping and auth

    def _ping(self) -> None:
        """``GET /v2/``: pick the scheme (https first; http for insecure/local registries) and the challenge."""
        if self._scheme is not None:
            return
        schemes = ["https", "http"] if (self.insecure or http_allowed(self.registry)) else ["https"]
        errors: list[OCIError] = []
        for scheme in schemes:
            url = f"{scheme}://{self.registry}/v2/"
            try:
                # with a fallback, an https probe that hangs must not use up the whole deadline
                resp = self._exchange("GET", url, {}, probe=scheme == "https" and len(schemes) > 1)
            except OCIError as exc:
                errors.append(exc)
                continue
            if resp.status in (200, 401):
                self._scheme = scheme
                self._challenge = _parse_challenge(resp.headers.get("WWW-Authenticate", "")) \
                    if resp.status == 401 else None
                return
            errors.append(self._error("GET", resp))
        raise errors[0]  # the https failure says most (e.g. an untrusted certificate)

    def _authorization(self, scope: str) -> str | None:
        """The Authorization header for ``scope`` (fetching a bearer token when the registry wants one)."""
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        if scheme == "basic":
            return self.credentials.basic_header() if self.credentials else None
        if scheme != "bearer":
            return None
        if scope not in self._tokens:
            self._tokens[scope] = "Bearer " + self._fetch_token(params, scope)
        return self._tokens[scope]

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthenticationError(f"the registry {self.registry} sent a bearer challenge without a realm")
        query = [("scope", s) for s in scope.split(" ") if s]
        if params.get("service"):
            query.append(("service", params["service"]))
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        method = "POST" if self.credentials and self.credentials.identity_token else "GET"
        if method == "POST":
            form = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token":
                                           self.credentials.identity_token, "service": params.get("service", ""),
                                           "scope": scope, "client_id": "fluxpy"}).encode()
            resp = self._exchange("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, form)
        else:
            if self.credentials and (self.credentials.username or self.credentials.password):
                headers["Authorization"] = self.credentials.basic_header()
            resp = self._exchange("GET", url, headers)
        if resp.status != 200:
            raise self._error(method, resp, auth=True)
        try:
            answer = json.loads(resp.body)
            return answer.get("token") or answer["access_token"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AuthenticationError(f"{method} {realm}: the token service sent no token") from None

    def _reauthenticate(self, resp: _Response, scope: str) -> bool:
        """After a 401: take the new challenge (and a token for the scopes it asks); True to retry."""
        scheme, params = _parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer":
            wanted = " ".join(s for s in dict.fromkeys([scope, params.get("scope", "")]) if s)
            self._challenge = (scheme, {k: v for k, v in params.items() if k != "scope"})
            self._tokens[scope] = "Bearer " + self._fetch_token(params, wanted)
            return True
        if scheme == "basic" and self.credentials and self._challenge != (scheme, params):
            self._challenge = (scheme, params)
            return True
        return False

    def _error(self, method: str, resp: _Response, *, auth: bool = False) -> RegistryError:
        """A RegistryError worded as go-containerregistry's transport errors."""
        codes: list[str] = []
        detail = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            errors = json.loads(resp.body).get("errors") or []
            parts = []
            for e in errors:
                codes.append(str(e.get("code", "")))
                text = f"{e.get('code', '')}: {e.get('message', '')}"
                if e.get("detail"):
                    text += f"; {_go_detail(e['detail'])}"
                parts.append(text)
            detail = "; ".join(parts)
        if not detail:
            detail = f"unexpected status code {resp.status} {resp.reason}"
            if method == "HEAD":
                detail += " (HEAD responses have no body, use GET for details)"
            elif resp.body.strip() and len(resp.body) < 512:
                detail += f": {resp.body.decode(errors='replace').strip()}"
        cls = AuthenticationError if auth or resp.status in (401, 403) else RegistryError
        return cls(f"{method} {resp.url}: {detail}", resp.status, tuple(codes))

    # ------------------------------------------------------------------ requests

    def request(self, method: str, path: str, *, repository: str = "", push: bool = False,
                headers: dict[str, str] | None = None, body: bytes | BinaryIO | None = None,
                ok: Iterable[int] = (200,), sink: BinaryIO | None = None) -> _Response:
        """A registry API request to ``path`` (under ``/v2/``, or an absolute upload URL), authenticated for
        ``repository`` (pull, or pull+push), following redirects; RegistryError unless the status is ``ok``."""
        self._ping()
        scope = f"repository:{repository}:{'pull,push' if push else 'pull'}" if repository else ""
        url = path if path.startswith(("http://", "https://")) else f"{self._scheme}://{self.registry}{path}"
        ok = tuple(ok)
        retried = False
        redirects = 0
        while True:
            all_headers = dict(headers or {})
            same_host = urllib.parse.urlsplit(url).netloc == self.registry
            authorization = self._authorization(scope) if same_host else None
            if authorization:
                all_headers["Authorization"] = authorization
            resp = self._exchange(method, url, all_headers, body, sink=sink)
            if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") \
                    and resp.headers.get("Location") and redirects < _MAX_REDIRECTS:
                url = urllib.parse.urljoin(url, resp.headers["Location"])
                redirects += 1
                continue
            if resp.status == 401 and same_host and not retried:
                retried = True
                if self._reauthenticate(resp, scope):
                    continue
            if resp.status not in ok:
                raise self._error(method, resp)
            return resp

    # ------------------------------------------------------------------ manifests

    def head_manifest(self, ref: Reference) -> Descriptor:
        """The descriptor of a manifest (HEAD; the digest from ``Docker-Content-Digest``)."""
        resp = self.request("HEAD", f"/v2/{ref.repository}/manifests/{ref.identifier}",
                            repository=ref.repository, headers={"Accept": MANIFEST_ACCEPT})
        digest = resp.headers.get("Docker-Content-Digest", "")
        if not digest:
            raise RegistryError(f"HEAD {resp.url}: the registry sent no Docker-Content-Digest header")
        return Descriptor(resp.headers.get("Content-Type", "").split(";")[0], digest,
                          int(resp.headers.get("Content-Length") or 0))

    def get_manifest(self, ref: Reference) -> Manifest:
        """Fetch a manifest (image or index); verified against the digest when ``ref`` has one."""
        resp = self.request("GET", f"/v2/{ref.repository}/manifests/{ref.identifier}",
                            repository=ref.repository, headers={"Accept": MANIFEST_ACCEPT})
        manifest = Manifest.parse(resp.body, resp.headers.get("Content-Type", ""))
        if ref.digest and manifest.digest != ref.digest:
            raise OCIError(f"manifest digest: {manifest.digest} does not match requested digest: {ref.digest}")
        return manifest

    def resolve_digest(self, ref: Reference) -> str:
        """The manifest digest of a tag: HEAD, falling back to GET (as Flux's getRevision)."""
        if ref.digest:
            return ref.digest
        try:
            return self.head_manifest(ref).digest
        except RegistryError:
            return self.get_manifest(ref).digest

    def image_manifest(self, ref: Reference, platform: tuple[str, str] = ("linux", "amd64")) -> Manifest:
        """The image manifest of ``ref``; an index resolves to its child for ``platform`` (as remote.Image)."""
        manifest = self.get_manifest(ref)
        if not manifest.is_index:
            return manifest
        for child in manifest.manifests:
            p = child.platform or {}
            if (p.get("os"), p.get("architecture")) == platform:
                return self.get_manifest(ref.with_digest(child.digest))
        raise OCIError(f"no child with platform {platform[0]}/{platform[1]} in index {ref}")

    def put_manifest(self, ref: Reference, raw: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref``'s tag (or digest); returns its digest."""
        self.request("PUT", f"/v2/{ref.repository}/manifests/{ref.identifier}", repository=ref.repository,
                     push=True, headers={"Content-Type": media_type}, body=raw, ok=(200, 201, 202))
        return sha256_digest(raw)

    # ------------------------------------------------------------------ blobs

    def blob_exists(self, repository: str, digest: str) -> bool:
        try:
            self.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, push=True)
            return True
        except RegistryError as exc:
            if exc.status == 404:
                return False
            raise

    def get_blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, verified against its digest."""
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository)
        if sha256_digest(resp.body) != digest:
            raise OCIError(f"error verifying sha256 checksum after reading {len(resp.body)} bytes; "
                           f"got {sha256_digest(resp.body)!r}, want {digest!r}")
        return resp.body

    def download_blob(self, repository: str, digest: str, dest: str | os.PathLike) -> int:
        """Stream a blob to a file, verifying its digest; returns its size."""
        with open(dest, "wb") as f:
            hashing = HashingWriter(f)
            self.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository, sink=hashing)
        if hashing.digest != digest:
            raise OCIError(f"error verifying sha256 checksum after reading {hashing.size} bytes; "
                           f"got {hashing.digest!r}, want {digest!r}")
        return hashing.size

    def upload_blob(self, repository: str, data: bytes | str | os.PathLike, digest: str | None = None) -> str:
        """Upload a blob (bytes or a file) unless the registry has it; returns its digest."""
        if isinstance(data, (bytes, bytearray)):
            digest = digest or sha256_digest(bytes(data))
            opener: Callable[[], Any] = lambda: contextlib.nullcontext(bytes(data))  # noqa: E731
            size = len(data)
        else:
            path = os.fspath(data)
            digest = digest or file_digest(path)
            opener = lambda: open(path, "rb")  # noqa: E731
            size = os.path.getsize(path)
        if self.blob_exists(repository, digest):
            return digest
        resp = self.request("POST", f"/v2/{repository}/blobs/uploads/", repository=repository, push=True,
                            body=b"", ok=(202,))
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"POST {resp.url}: the registry sent no upload Location")
        location = urllib.parse.urljoin(resp.url, location)
        location += ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
        with opener() as body:
            self.request("PUT", location, repository=repository, push=True, body=body, ok=(201, 204),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        return digest

    # ------------------------------------------------------------------ tags

    def list_tags(self, repository: str, page_size: int = 1000) -> list[str]:
        """Every tag of a repository (following ``Link: <…>; rel="next"`` pages)."""
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n={page_size}"
        while path:
            resp = self.request("GET", path, repository=repository)
            try:
                tags.extend(json.loads(resp.body).get("tags") or [])
            except (ValueError, AttributeError):
                raise OCIError(f"GET {resp.url}: invalid tag list") from None
            match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', resp.headers.get("Link", ""))
            path = urllib.parse.urljoin(resp.url, match.group(1)) if match else None
        return tags


def _parse_proxy(url: str) -> tuple[str, int, dict[str, str]]:
    """``http://[user:password@]host:port`` → (host, port, the CONNECT headers)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidReference(f"invalid proxy URL: {redact_userinfo(url)}")
    headers = {}
    if parts.username:
        token = base64.b64encode(f"{urllib.parse.unquote(parts.username)}:"
                                 f"{urllib.parse.unquote(parts.password or '')}".encode()).decode()
        headers["Proxy-Authorization"] = f"Basic {token}"
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), headers


def redact_userinfo(url: str) -> str:
    """A URL without its ``user:password@`` part."""
    return re.sub(r"//[^/@]*@", "//", url)


class HashingWriter:
    def __init__(self, target: BinaryIO):
        self.target, self.hash, self.size = target, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.target.write(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _go_detail(detail: Any) -> str:
    """A JSON error detail printed as Go's %v of map/slice values."""
    if isinstance(detail, dict):
        return "map[" + " ".join(f"{k}:{_go_detail(v)}" for k, v in sorted(detail.items())) + "]"
    if isinstance(detail, list):
        return "[" + " ".join(_go_detail(v) for v in detail) + "]"
    return str(detail)


def client_for(ref: Reference, *, credentials: Credentials | None = None, insecure: bool = False,
               ssl_context: ssl.SSLContext | None = None, timeout: float | None = 60.0,
               proxy: str = "") -> RegistryClient:
    """A RegistryClient for ``ref``'s registry."""
    return RegistryClient(ref.registry, credentials=credentials, insecure=insecure, ssl_context=ssl_context,
                          timeout=timeout, proxy=proxy)
