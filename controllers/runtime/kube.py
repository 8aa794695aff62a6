"""The one Kubernetes client fluxpy uses everywhere: a thin REST client over ``http.client`` + ``ssl``.

Why not the ``kubernetes`` package: importing it costs ~0.45 s, which every CLI command would pay; this client
costs a few milliseconds and is enough for a dynamic, dict-based API (objects are plain dicts, a kind is a
:class:`~controllers.api.types.ResourceType`). It is thread-safe: each thread keeps its own keep-alive
connection, and each watch opens a dedicated one.

Kubeconfig support: clusters with CA file/data, ``insecure-skip-tls-verify``, ``tls-server-name`` and an
http(s) ``proxy-url`` (CONNECT tunnel); users with client certificate/key (file or data), ``token``/``tokenFile``,
basic auth, ``exec`` credential plugins (tokens or client certificates, re-run when they expire), the legacy
``auth-provider`` (oidc, gcp, azure: through the official ``kubernetes`` package's loader, imported only for
such a user) and impersonation (``as``, ``as-groups``). Any other field fails with one line naming it
(:func:`check_fields`). In a Pod, the service-account token (re-read as it rotates) and CA.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterator

from controllers.api.types import ResourceType

DEFAULT_TIMEOUT = 30.0
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeConfigError(Exception):
    """The kubeconfig is missing or invalid, or names a context/cluster/user that does not exist."""


class KubeError(Exception):
    """An error answered by the apiserver (or a failure to reach it: ``Unreachable``)."""

    def __init__(self, status: int, reason: str, message: str, body: dict | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class AlreadyExists(Conflict):
    pass


class Gone(KubeError):
    pass


class Forbidden(KubeError):
    pass


class Unauthorized(KubeError):
    pass


class Invalid(KubeError):
    pass


class Unreachable(KubeError):
    """The apiserver could not be reached (refused, timed out, TLS failure)."""


_ERRORS_BY_STATUS = {401: Unauthorized, 403: Forbidden, 404: NotFound, 410: Gone, 422: Invalid}


def error_from_status(status: int, body: dict | None, fallback: str = "") -> KubeError:
    """Build the typed error for an HTTP status and its ``Status`` body."""
    body = body if isinstance(body, dict) else None
    reason = (body or {}).get("reason", "") or http.client.responses.get(status, "")
    message = (body or {}).get("message", "") or fallback or f"HTTP {status}"
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    else:
        cls = _ERRORS_BY_STATUS.get(status, KubeError)
    return cls(status, reason, message, body)


class _Credentials:
    """How requests authenticate: static headers, or an exec plugin / token file / auth-provider refreshed when
    stale. An exec plugin may return a client certificate instead of a token: then :meth:`ssl_context` gives
    the context to connect with (``ssl_factory(cert, key)``) and :attr:`generation` changes on every refresh,
    so connections made with an expired certificate are not reused."""

    def __init__(self, token: str | None = None, token_file: str | None = None, basic: tuple[str, str] | None = None,
                 exec_config: dict | None = None, *, cluster_info: dict | None = None,
                 ssl_factory: "Callable[[bytes | None, bytes | None], ssl.SSLContext] | None" = None,
                 auth_provider: "Callable[[], str] | None" = None):
        self._token = token
        self._token_file = token_file
        self._basic = basic
        self._exec = exec_config
        self._cluster_info = cluster_info
        self._ssl_factory = ssl_factory
        self._auth_provider = auth_provider
        self._ssl: ssl.SSLContext | None = None
        self._expiry = 0.0
        self.generation = 0
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        if self._exec:
            self._refresh_exec()
        if self._auth_provider:
            self._refresh_auth_provider()
        if self._token_file:
            try:
                token = Path(self._token_file).read_text().strip()
            except OSError as exc:
                raise KubeConfigError(f"cannot read token file {self._token_file}: {exc.strerror}") from None
            return {"Authorization": f"Bearer {token}"}
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if self._basic:
            raw = base64.b64encode(f"{self._basic[0]}:{self._basic[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context carrying an exec plugin's client certificate (None: the client's own context)."""
        if self._exec:
            self._refresh_exec()
        return self._ssl

    def _fresh(self) -> bool:
        return (self._token is not None or self._ssl is not None) and time.time() < self._expiry

    def _refresh_auth_provider(self) -> None:
        with self._lock:
            if not self._fresh():
                self._token = self._auth_provider()
                self._expiry = time.time() + 60  # the loader itself refreshes an expired id-token

    def _refresh_exec(self) -> None:
        with self._lock:
            if self._fresh():
                return
            cfg = self._exec
            command = cfg.get("command") or ""
            env = dict(os.environ)
            for item in cfg.get("env") or []:
                env[item["name"]] = item["value"]
            spec: dict[str, Any] = {"interactive": False}
            if cfg.get("provideClusterInfo") and self._cluster_info:
                spec["cluster"] = self._cluster_info
            env["KUBERNETES_EXEC_INFO"] = json.dumps(
                {"apiVersion": cfg.get("apiVersion", "client.authentication.k8s.io/v1"),
                 "kind": "ExecCredential", "spec": spec})
            try:
                out = subprocess.run([command, *(cfg.get("args") or [])], env=env, capture_output=True, text=True,
                                     timeout=60, check=True).stdout
                status = json.loads(out).get("status") or {}
            except FileNotFoundError:
                hint = f": {cfg['installHint'].strip()}" if cfg.get("installHint") else ""
                raise KubeConfigError(f"credential plugin {command!r} not found{hint}") from None
            except subprocess.CalledProcessError as exc:
                detail = (exc.stderr or "").strip().splitlines()[-1:] or [f"exit status {exc.returncode}"]
                raise KubeConfigError(f"credential plugin {command!r} failed: {detail[0]}") from None
            except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
                raise KubeConfigError(f"credential plugin {command!r} failed: {exc}") from None
            expiry = status.get("expirationTimestamp")
            self._expiry = _parse_time(expiry) - 30 if expiry else float("inf")
            self._token = status.get("token")
            cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
            if cert and key and self._ssl_factory:
                self._ssl = self._ssl_factory(cert.encode(), key.encode())
            elif not self._token:
                raise KubeConfigError(f"credential plugin {command!r} returned neither a token nor a client "
                                      "certificate and key")
            self.generation += 1


#: The kubeconfig fields fluxpy understands (``extensions`` are ignored, as kubectl ignores unknown ones).
USER_FIELDS = frozenset({"client-certificate", "client-certificate-data", "client-key", "client-key-data", "token",
                         "tokenFile", "username", "password", "exec", "auth-provider", "as", "as-groups",
                         "extensions"})
CLUSTER_FIELDS = frozenset({"server", "certificate-authority", "certificate-authority-data",
                            "insecure-skip-tls-verify", "tls-server-name", "proxy-url", "disable-compression",
                            "extensions"})


def check_fields(section: dict, known: frozenset, what: str, name: str) -> None:
    """Fail with one line naming the first field of a kubeconfig ``user``/``cluster`` fluxpy does not support."""
    for field in section:
        if field not in known:
            raise KubeConfigError(f"kubeconfig {what} {name!r}: field {field!r} is not supported by fluxpy")


def _proxy_of(url: str | None, cluster: str) -> tuple[str, int] | None:
    """``(host, port)`` of an http(s) ``proxy-url`` (requests are tunnelled through it with CONNECT)."""
    if not url:
        return None
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise KubeConfigError(f"kubeconfig cluster {cluster!r}: proxy-url {url!r} is not supported by fluxpy "
                              "(only http:// proxies, tunnelled with CONNECT)")
    return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)


def _auth_provider_token(cluster_entry: dict, user_entry: dict, context: str) -> "Callable[[], str]":
    """A function returning the bearer token of a legacy ``auth-provider`` user (oidc, gcp, azure).

    The official ``kubernetes`` client knows these providers (oidc id-token expiry and refresh with the
    issuer, gcp/azure token refresh); it costs ~0.45 s to import, so it is imported only here, for a
    kubeconfig that needs it.
    """
    def clean(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k != "_base"}

    config = {"current-context": context, "contexts": [{"name": context, "context": {
        "cluster": cluster_entry.get("name"), "user": user_entry.get("name")}}],
        "clusters": [clean(cluster_entry)], "users": [clean(user_entry)]}
    base = str(user_entry.get("_base", Path(".")))
    name = (user_entry.get("user") or {}).get("auth-provider", {}).get("name", "")

    def token() -> str:
        try:
            from kubernetes.client import Configuration
            from kubernetes.config.kube_config import KubeConfigLoader
        except ImportError:
            raise KubeConfigError(f"user {user_entry.get('name')!r} uses the auth-provider {name!r}, which needs "
                                  "the 'kubernetes' package: pip install kubernetes") from None
        configuration = Configuration()
        try:
            KubeConfigLoader(config_dict=config, active_context=context, config_base_path=base).load_and_set(
                configuration)
        except Exception as exc:  # noqa: BLE001 - the loader raises many types; one line for all
            raise KubeConfigError(f"auth-provider {name!r} of user {user_entry.get('name')!r}: {exc}") from None
        value = (configuration.api_key or {}).get("BearerToken") or ""  # "Bearer <token>"
        if not value.startswith("Bearer "):
            raise KubeConfigError(f"auth-provider {name!r} of user {user_entry.get('name')!r} gave no token")
        return value[len("Bearer "):]
    return token


def _parse_time(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _load_yaml(path: Path) -> dict:
    import yaml  # only kubeconfigs need YAML; in-cluster clients never pay for it

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise KubeConfigError(f"kubeconfig {path} does not exist") from None
    except OSError as exc:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise KubeConfigError(f"kubeconfig {path} is empty or not a mapping")
    return data


def _merge_kubeconfigs(paths: list[Path]) -> dict:
    """Merge kubeconfig files as kubectl does: the first file to set a name (or current-context) wins."""
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": [], "current-context": ""}
    for path in paths:
        data = _load_yaml(path)
        base = path.parent
        if not merged["current-context"]:
            merged["current-context"] = data.get("current-context") or ""
        for section, key in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
            seen = {e.get("name") for e in merged[section]}
            for entry in data.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in seen:
                    entry = dict(entry)
                    entry["_base"] = base
                    merged[section].append(entry)
    return merged


def _named(entries: list[dict], name: str, what: str, path: str) -> dict:
    for entry in entries:
        if entry.get("name") == name:
            return entry
    raise KubeConfigError(f"{what} {name!r} not found in kubeconfig {path}")


def _file_or_data(section: dict, key: str, base: Path) -> bytes | None:
    """Read ``<key>-data`` (base64) or ``<key>`` (a path relative to the kubeconfig) from a section."""
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        p = Path(os.path.expanduser(section[key]))
        if not p.is_absolute():
            p = base / p
        try:
            return p.read_bytes()
        except OSError as exc:
            raise KubeConfigError(f"cannot read {key} {p}: {exc.strerror}") from None
    return None


_WARNING = re.compile(r'^\d{3} \S+ "((?:[^"\\]|\\.)*)"')
_warned: set[str] = set()


def warning_text(header: str) -> str:
    """The text of one RFC 7234 ``Warning`` header as the apiserver sends it (``299 - "text"``)."""
    match = _WARNING.match(header.strip())
    return re.sub(r"\\(.)", r"\1", match.group(1)) if match else header.strip()


def log_warning_once(text: str) -> None:
    """The default :attr:`KubeClient.on_warning`: log each distinct warning once per process, as
    controller-runtime's KubeAPIWarningLogger (e.g. a deprecated API version applied from Git)."""
    if text not in _warned:
        _warned.add(text)
        logging.getLogger("fluxpy").warning("Kubernetes API: %s", text)


class KubeClient:
    """A Kubernetes REST client bound to one server and one identity. Objects are plain dicts.

    ``on_warning`` receives the text of each ``Warning`` header the apiserver answers with (a deprecated
    API version, an unknown field under ``fieldValidation=Warn``); set it per client to collect them."""

    on_warning: Callable[[str], None] = staticmethod(log_warning_once)

    def __init__(self, server: str, *, ssl_context: ssl.SSLContext | None = None, credentials: _Credentials | None = None,
                 namespace: str = "default", tls_server_name: str | None = None,
                 impersonate: tuple[str, tuple[str, ...]] | None = None, context_name: str = "",
                 proxy: tuple[str, int] | None = None):
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise KubeConfigError(f"invalid server URL {server!r}: expected https://host[:port]")
        self.server = server.rstrip("/")
        self.context_name = context_name
        self.namespace = namespace
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._prefix = parsed.path.rstrip("/")
        self._ssl = ssl_context
        self._tls_server_name = tls_server_name
        self._credentials = credentials or _Credentials()
        self._impersonate = impersonate
        self._proxy = proxy
        self._local = threading.local()
        self._discovery: dict[str, dict[str, ResourceType]] = {}
        self._discovery_lock = threading.Lock()

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike | None = None, context: str | None = None) -> "KubeClient":
        """Build a client from a kubeconfig (``path``, else ``$KUBECONFIG``, else ``~/.kube/config``)."""
        if path:
            paths = [Path(os.path.expanduser(str(path)))]
            shown = str(path)
        elif os.environ.get("KUBECONFIG"):
            paths = [Path(os.path.expanduser(p)) for p in os.environ["KUBECONFIG"].split(os.pathsep) if p]
            existing = [p for p in paths if p.exists()]
            if not existing:
                raise KubeConfigError(f"no kubeconfig found: $KUBECONFIG names {os.environ['KUBECONFIG']}, which does not exist")
            paths, shown = existing, os.environ["KUBECONFIG"]
        else:
            paths = [Path.home() / ".kube" / "config"]
            shown = str(paths[0])
            if not paths[0].exists():
                raise KubeConfigError(
                    f"no kubeconfig found at {shown}: set --kubeconfig or $KUBECONFIG (or run 'fluxpy dev up')")
        cfg = _merge_kubeconfigs(paths)
        ctx_name = context or cfg["current-context"]
        if not ctx_name:
            raise KubeConfigError(f"kubeconfig {shown} has no current-context: pass --context")
        ctx = _named(cfg["contexts"], ctx_name, "context", shown).get("context") or {}
        cluster_entry = _named(cfg["clusters"], ctx.get("cluster", ""), "cluster", shown)
        user_entry = _named(cfg["users"], ctx.get("user", ""), "user", shown) if ctx.get("user") else {"user": {}}
        cluster, user = cluster_entry.get("cluster") or {}, user_entry.get("user") or {}
        cbase, ubase = cluster_entry.get("_base", Path(".")), user_entry.get("_base", Path("."))
        server = cluster.get("server")
        if not server:
            raise KubeConfigError(f"cluster {ctx.get('cluster')!r} in kubeconfig {shown} has no server")
        check_fields(cluster, CLUSTER_FIELDS, "cluster", ctx.get("cluster", ""))
        check_fields(user, USER_FIELDS, "user", ctx.get("user", ""))
        ca = _file_or_data(cluster, "certificate-authority", cbase)
        insecure = bool(cluster.get("insecure-skip-tls-verify"))

        def tls(cert: bytes | None, key: bytes | None) -> ssl.SSLContext:
            return _ssl_context(ca=ca, insecure=insecure, cert=cert, key=key)

        sslctx = None
        if server.startswith("https"):
            sslctx = tls(_file_or_data(user, "client-certificate", ubase), _file_or_data(user, "client-key", ubase))
        token_file = user.get("tokenFile")
        creds = _Credentials(
            token=user.get("token"),
            token_file=str(ubase / token_file) if token_file else None,
            basic=(user["username"], user.get("password", "")) if user.get("username") else None,
            exec_config=user.get("exec"),
            cluster_info={k: v for k, v in cluster.items() if k != "extensions"},
            ssl_factory=tls if server.startswith("https") else None,
            auth_provider=_auth_provider_token(cluster_entry, user_entry, ctx_name) if user.get("auth-provider")
            else None,
        )
        imp = (user["as"], tuple(user.get("as-groups") or ())) if user.get("as") else None
        return cls(server, ssl_context=sslctx, credentials=creds, namespace=ctx.get("namespace") or "default",
                   tls_server_name=cluster.get("tls-server-name"), impersonate=imp, context_name=ctx_name,
                   proxy=_proxy_of(cluster.get("proxy-url"), ctx.get("cluster", "")))

    @classmethod
    def in_cluster(cls) -> "KubeClient":
        """Build a client from the Pod's service account (token re-read on every request as it rotates)."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise KubeConfigError("not running in a Pod: KUBERNETES_SERVICE_HOST is not set")
        sa = Path(SERVICE_ACCOUNT_DIR)
        try:
            ca = (sa / "ca.crt").read_bytes()
            namespace = (sa / "namespace").read_text().strip()
        except OSError as exc:
            raise KubeConfigError(f"cannot read the service account in {sa}: {exc.strerror}") from None
        if ":" in host:
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", ssl_context=_ssl_context(ca=ca), namespace=namespace,
                   credentials=_Credentials(token_file=str(sa / "token")), context_name="in-cluster")

    @classmethod
    def auto(cls, kubeconfig: str | None = None, context: str | None = None) -> "KubeClient":
        """In a Pod with no kubeconfig given or set: the in-cluster client; otherwise the kubeconfig's."""
        if not kubeconfig and not os.environ.get("KUBECONFIG") and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return cls.in_cluster()
        return cls.from_kubeconfig(kubeconfig, context)

    @property
    def impersonated_user(self) -> str | None:
        """The user this client acts as (``impersonate``, or the kubeconfig's ``as``), None when it acts as itself."""
        return self._impersonate[0] if self._impersonate else None

    def impersonate(self, user: str, groups: tuple[str, ...] | list[str] = ()) -> "KubeClient":
        """A new client that acts as ``user`` (``Impersonate-User``/``Impersonate-Group`` headers)."""
        clone = KubeClient(self.server, ssl_context=self._ssl, credentials=self._credentials, namespace=self.namespace,
                           tls_server_name=self._tls_server_name, impersonate=(user, tuple(groups)),
                           context_name=self.context_name, proxy=self._proxy)
        clone._discovery, clone.on_warning = self._discovery, self.on_warning
        return clone

    # ---------------------------------------------------------------- transport

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        """A new connection to the server (through the ``proxy-url`` tunnel when there is one)."""
        host, port = self._proxy or (self._host, self._port)
        if self._scheme == "https":
            ctx = self._credentials.ssl_context() or self._ssl or ssl.create_default_context()
            if self._tls_server_name:
                conn: http.client.HTTPConnection = _SNIConnection(host, port, context=ctx, timeout=timeout,
                                                                  server_hostname=self._tls_server_name)
            else:
                conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        if self._proxy:
            conn.set_tunnel(self._host, self._port)
        return conn

    def _headers(self, content_type: str | None, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "fluxpy"}
        headers.update(self._credentials.headers())
        if content_type:
            headers["Content-Type"] = content_type
        if self._impersonate:
            headers["Impersonate-User"] = self._impersonate[0]
        return headers

    def _send(self, conn: http.client.HTTPConnection, method: str, url: str, payload: bytes | None,
              headers: dict[str, str]) -> None:
        conn.putrequest(method, url, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        for group in (self._impersonate[1] if self._impersonate else ()):
            conn.putheader("Impersonate-Group", group)
        if payload is not None:
            conn.putheader("Content-Length", str(len(payload)))
        conn.endheaders(payload)

    def _url(self, path: str, params: dict[str, Any] | None) -> str:
        url = self._prefix + path
        if params:
            clean = {k: ("true" if v is True else "false" if v is False else v) for k, v in params.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean)
        return url

    def _unreachable(self, exc: BaseException) -> Unreachable:
        detail = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        if isinstance(exc, ssl.SSLError):
            detail = f"TLS error: {exc.reason or exc}"
        elif isinstance(exc, TimeoutError):
            detail = "timed out"
        return Unreachable(0, "Unreachable", f"cannot reach the Kubernetes API at {self.server}: {detail}")

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, timeout: float | None = None) -> Any:
        """Send one request and return the decoded JSON answer; raise the typed :class:`KubeError` on failure."""
        payload = None
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            content_type = content_type or "application/json"
        url = self._url(path, params)
        headers = self._headers(content_type)
        timeout = timeout or DEFAULT_TIMEOUT
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            if conn is not None and getattr(self._local, "generation", None) != self._credentials.generation:
                conn.close()  # made with credentials that have been refreshed since (an expired certificate)
                conn = None
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = self._connect(timeout)
                self._local.generation = self._credentials.generation
            try:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                self._send(conn, method, url, payload, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as exc:
                conn.close()
                self._local.conn = None
                # A kept-alive connection the server closed: retry once on a fresh connection.
                if reused and attempt == 0:
                    continue
                raise self._unreachable(exc) from None
            except (OSError, ssl.SSLError) as exc:
                conn.close()
                self._local.conn = None
                raise self._unreachable(exc) from None
            if resp.will_close:
                conn.close()
                self._local.conn = None
            for header in resp.headers.get_all("Warning") or ():
                self.on_warning(warning_text(header))
            return _decode(resp.status, data)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- verbs

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> dict:
        return self.request("GET", rt.path(namespace, name))

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> dict:
        """List objects (all namespaces when ``namespace`` is None), following ``continue`` tokens."""
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": 500}
        result = self.request("GET", rt.path(namespace), params=params)
        while result.get("metadata", {}).get("continue"):
            params["continue"] = result["metadata"]["continue"]
            more = self.request("GET", rt.path(namespace), params=params)
            result["items"].extend(more.get("items") or [])
            result["metadata"] = more.get("metadata", {})
        for item in result.get("items") or []:
            # list items carry no apiVersion/kind; fill them so every object is self-describing
            item.setdefault("apiVersion", rt.api_version)
            item.setdefault("kind", rt.kind)
        return result

    def watch(self, rt: ResourceType, namespace: str | None = None, *, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int = 300) -> Iterator[tuple[str, dict]]:
        """Stream watch events as ``(type, object)``; raises :class:`Gone` when the resourceVersion is too old.

        The stream ends when the server closes it (after ``timeout_seconds``); callers re-watch from the last
        resourceVersion they saw.
        """
        params = {"watch": True, "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": True}
        for line in self.stream_lines(rt.path(namespace), params, timeout=timeout_seconds + 30):
            event = json.loads(line)
            if event.get("type") == "ERROR":
                status = event.get("object") or {}
                raise error_from_status(int(status.get("code") or 500), status)
            yield event["type"], event["object"]

    def stream_lines(self, path: str, params: dict[str, Any] | None = None, *, timeout: float = 330) -> Iterator[bytes]:
        """GET ``path`` on a dedicated connection and yield its body line by line (watches, followed Pod logs).

        An error status raises the typed :class:`KubeError`; the stream ends when the server closes it.
        """
        conn = self._connect(timeout)
        try:
            try:
                self._send(conn, "GET", self._url(path, params), None, self._headers(None, accept="*/*"))
                resp = conn.getresponse()
            except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from None
            if resp.status != 200:
                _decode(resp.status, resp.read())
            while True:
                try:
                    line = resp.readline()
                except (OSError, ssl.SSLError, http.client.HTTPException):
                    return
                if not line:
                    return
                yield line
        finally:
            conn.close()

    def create(self, rt: ResourceType, obj: dict, namespace: str | None = None, *, dry_run: bool = False) -> dict:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        return self.request("POST", rt.path(ns), body=obj, params={"dryRun": "All" if dry_run else None})

    def replace(self, rt: ResourceType, obj: dict, *, subresource: str | None = None) -> dict:
        meta = obj["metadata"]
        return self.request("PUT", rt.path(meta.get("namespace"), meta["name"], subresource), body=obj)

    _PATCH_TYPES = {
        "merge": "application/merge-patch+json",
        "json": "application/json-patch+json",
        "strategic": "application/strategic-merge-patch+json",
        "apply": "application/apply-patch+yaml",
    }

    def patch(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = "merge", subresource: str | None = None, field_manager: str | None = None,
              force: bool | None = None, dry_run: bool = False) -> dict:
        params = {"fieldManager": field_manager, "force": force, "dryRun": "All" if dry_run else None}
        return self.request("PATCH", rt.path(namespace, name, subresource), body=patch, params=params,
                            content_type=self._PATCH_TYPES[patch_type])

    def apply(self, obj: dict, *, field_manager: str, force: bool = True, subresource: str | None = None,
              dry_run: bool = False) -> dict:
        """Server-side apply ``obj`` (any kind; its resource is found through discovery)."""
        rt = self.resource_for(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            namespace = self.namespace
        return self.patch(rt, meta["name"], obj, namespace, patch_type="apply", subresource=subresource,
                          field_manager=field_manager, force=force, dry_run=dry_run)

    def delete(self, rt: ResourceType, name: str, namespace: str | None = None, *,
               propagation: str | None = "Background") -> dict | None:
        """Delete one object; return None when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation} if propagation else None
        try:
            return self.request("DELETE", rt.path(namespace, name), body=body)
        except NotFound:
            return None

    def wait_for(self, rt: ResourceType, name: str, namespace: str | None, predicate, *, timeout: float,
                 what: str = "") -> dict:
        """Return the object once ``predicate(obj)`` is true, watching it; raise TimeoutError after ``timeout``.

        Raises :class:`NotFound` if the object does not exist or is deleted while waiting.
        """
        deadline = time.monotonic() + timeout
        selector = f"metadata.name={name}"
        while True:
            listed = self.list(rt, namespace, field_selector=selector)
            items = listed.get("items") or []
            if not items:
                raise NotFound(404, "NotFound", f"{rt.kind} '{_qualified(namespace, name)}' not found")
            if predicate(items[0]):
                return items[0]
            rv = listed["metadata"].get("resourceVersion")
            remaining = deadline - time.monotonic()
            try:
                while remaining > 0:
                    for event, obj in self.watch(rt, namespace, resource_version=rv, field_selector=selector,
                                                 timeout_seconds=max(1, min(int(remaining), 60))):
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if event == "DELETED":
                            raise NotFound(404, "NotFound", f"{rt.kind} '{_qualified(namespace, name)}' was deleted")
                        if event in ("ADDED", "MODIFIED") and predicate(obj):
                            return obj
                        if time.monotonic() >= deadline:
                            break
                    remaining = deadline - time.monotonic()
            except Gone:
                continue  # re-list and re-watch
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what or rt.kind + ' ' + _qualified(namespace, name)}")

    def version(self) -> dict:
        return self.request("GET", "/version")

    # ---------------------------------------------------------------- discovery

    def resource_for(self, api_version: str, kind: str) -> ResourceType:
        """The resource serving ``kind`` in ``api_version`` (discovery, cached; refreshed once on a miss)."""
        for refresh in (False, True):
            resources = self._group_version(api_version, refresh)
            if kind in resources:
                return resources[kind]
        raise NotFound(404, "NotFound", f"the server has no resource for kind {kind!r} in {api_version!r}")

    def _group_version(self, api_version: str, refresh: bool) -> dict[str, ResourceType]:
        with self._discovery_lock:
            if not refresh and api_version in self._discovery:
                return self._discovery[api_version]
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        try:
            doc = self.request("GET", path)
        except NotFound:
            doc = {"resources": []}
        found = {}
        for res in doc.get("resources") or []:
            if "/" in res["name"]:
                continue  # subresources
            found[res["kind"]] = ResourceType(group, version, res["kind"], res["name"], res.get("namespaced", True))
        with self._discovery_lock:
            self._discovery[api_version] = found
        return found

    def find_kind(self, name: str) -> ResourceType:
        """The resource a kind is called by on the command line: its Kind, plural, singular or short name,
        searched (case-insensitively) across every served API group's preferred version."""
        wanted = name.lower()
        versions = ["v1"] + [g["preferredVersion"]["groupVersion"]
                             for g in self.request("GET", "/apis").get("groups") or []]
        for api_version in versions:
            group, _, version = api_version.rpartition("/")
            doc = self.request("GET", f"/apis/{api_version}" if group else f"/api/{version}")
            for res in doc.get("resources") or []:
                names = {res["kind"].lower(), res["name"], res.get("singularName", ""), *res.get("shortNames", [])}
                if "/" not in res["name"] and wanted in names:
                    return ResourceType(group, version, res["kind"], res["name"], res.get("namespaced", True))
        raise NotFound(404, "NotFound", f"the server has no resource of kind {name!r}")

    def forget_discovery(self) -> None:
        """Drop cached discovery (after CRDs are installed or removed)."""
        with self._discovery_lock:
            self._discovery.clear()


def _qualified(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _decode(status: int, data: bytes) -> Any:
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = None
    if 200 <= status < 300:
        if body is None:
            raise KubeError(status, "BadResponse", f"the apiserver answered HTTP {status} with a body that is not JSON")
        return body
    raise error_from_status(status, body, data[:200].decode(errors="replace").strip())


def _ssl_context(ca: bytes | None = None, insecure: bool = False, cert: bytes | None = None,
                 key: bytes | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if ca:
        # Self-signed CAs made by tools (and etcd/apiserver test setups) may lack key-usage extensions.
        ctx.verify_flags &= ~ssl.VERIFY_X509_STRICT
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert and key:
        # ssl can only load a certificate chain from files: write them to a private temp dir briefly.
        with tempfile.TemporaryDirectory(prefix="fluxpy-tls-") as tmp:
            cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for p, content in ((cert_path, cert), (key_path, key)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(content)
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError as exc:
                raise KubeConfigError(f"invalid client certificate or key in kubeconfig: {exc.reason or exc}") from None
    return ctx


class _SNIConnection(http.client.HTTPSConnection):
    """An HTTPS connection that verifies the server as ``server_hostname`` (kubeconfig ``tls-server-name``)."""

    def __init__(self, *args, server_hostname: str, **kwargs):
        super().__init__(*args, **kwargs)
        self._server_hostname = server_hostname

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_hostname)
