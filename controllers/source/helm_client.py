"""Talking to Helm repositories as Flux's source-controller does: the access options of a HelmRepository
(its Secrets), HTTP downloads of indexes and charts, and OCI charts through the real ``helm`` binary.

- :func:`repository_access` reads ``secretRef`` (basic auth, or a Docker config for OCI; TLS keys there are
  the deprecated form), ``certSecretRef`` (CA, client certificate), ``passCredentials``, ``timeout`` and
  ``insecure``; failures are :class:`AccessError` with Flux's messages, never a secret value;
- :func:`http_get` is Helm's HTTP getter: basic auth only for the repository's own scheme and host unless
  ``passCredentials``, Go-shaped errors (``failed to fetch <url> : 401 Unauthorized``);
- :class:`OCIChartRepository` lists tags over the registry API and logs in and pulls with
  ``helm registry login`` / ``helm pull oci://…``, through ``controllers.lib.helm.HelmCLI`` (the real
  ``helm`` with its own throw-away configuration, cache and registry login, bounded in time).
"""
from __future__ import annotations

import dataclasses
import http
import http.client
import os
import shutil
import ssl
import time
import urllib.parse
from pathlib import Path

from controllers.api.objects import dig
from controllers.runtime.kube import KubeClient
from controllers.lib import credentials, semver
from controllers.lib.helm import DEFAULT_TIMEOUT, HelmCLI, HelmError
from controllers.lib.oci import registry as oci_registry
from controllers.source import common, helm_index

#: Helm's OCI tags use ``_`` where semver has ``+``.
OCI_PLUS = "_"
_MAX_REDIRECTS = 10
_CHUNK = 1 << 16


class AccessError(Exception):
    """The repository's access options cannot be built (a Secret is missing or malformed)."""


class FetchError(Exception):
    """A download failed (the message reads like Go's and names no credential)."""


@dataclasses.dataclass
class RepositoryAccess:
    """How to reach one Helm repository."""

    url: str
    """The normalised repository URL."""
    timeout: float = DEFAULT_TIMEOUT
    basic: tuple[str, str] | None = None
    pass_credentials: bool = False
    tls: credentials.TLSMaterial | None = None
    insecure: bool = False
    """OCI only: plain HTTP to the registry."""
    oci_credentials: oci_registry.Credentials | None = None

    def __repr__(self) -> str:  # never print credentials
        return f"RepositoryAccess(url={self.url!r}, timeout={self.timeout})"

    @property
    def is_oci(self) -> bool:
        return self.url.startswith("oci://")

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.ssl_context() if self.tls else None


def _secret(kube: KubeClient, namespace: str, name: str, what: str) -> dict[str, bytes]:
    try:
        return credentials.get_secret(kube, namespace, name)
    except credentials.SecretError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise AccessError(f"failed to get {what} '{namespace}/{name}': {detail}") from None


def repository_access(kube: KubeClient, repo: dict, url: str | None = None) -> RepositoryAccess:
    """The access options of a HelmRepository (Flux's GetClientOpts); ``url`` defaults to its own,
    normalised."""
    spec, namespace = repo.get("spec") or {}, repo["metadata"].get("namespace", "")
    access = RepositoryAccess(url=url or helm_index.normalize_url(spec.get("url", "")), timeout=common.timeout_of(repo),
                              pass_credentials=bool(spec.get("passCredentials")), insecure=bool(spec.get("insecure")))
    if dig(repo, "spec.certSecretRef.name"):
        name = spec["certSecretRef"]["name"]
        data = _secret(kube, namespace, name, "TLS authentication secret")
        try:
            access.tls = credentials.TLSMaterial.from_secret(data, f"{namespace}/{name}")
            if access.tls is None:
                raise credentials.SecretError(f"secret '{namespace}/{name}': no CA certificate or client certificate "
                                         "pair found")
            access.tls.ssl_context()
        except credentials.SecretError as exc:
            raise AccessError(f"failed to construct Helm client's TLS config: {exc}") from None
    if dig(repo, "spec.secretRef.name"):
        name = spec["secretRef"]["name"]
        data = _secret(kube, namespace, name, "authentication secret")
        has_user, has_pass = "username" in data, "password" in data
        if has_user != has_pass:
            present, missing = ("username", "password") if has_user else ("password", "username")
            raise AccessError(f"failed to detect authentication methods: secret '{namespace}/{name}': malformed "
                              f"basic auth - has '{present}' but missing '{missing}'")
        if has_user:
            access.basic = (data["username"].decode(), data["password"].decode())
        if access.tls is None:
            try:
                access.tls = credentials.TLSMaterial.from_secret(data, f"{namespace}/{name}")
            except credentials.SecretError as exc:
                raise AccessError(f"failed to detect authentication methods: {exc}") from None
        if access.is_oci:
            access.oci_credentials = _oci_credentials(data, access.url, name)
    elif access.is_oci and spec.get("provider") not in (None, "", "generic"):
        raise AccessError(f"failed to get credential from '{spec['provider']}': cloud provider authentication is "
                          "not supported by fluxpy")
    return access


def _oci_credentials(data: dict[str, bytes], url: str, secret_name: str) -> oci_registry.Credentials | None:
    """Flux's LoginOptionFromSecret: a Docker config entry for the URL's host, or username/password."""
    host = urllib.parse.urlsplit(url).netloc
    config = data.get(".dockerconfigjson")
    if config is not None:
        try:
            ref = oci_registry.parse_repository_url(url)
            creds = oci_registry.credentials_from_docker_config(config, ref)
        except (ValueError, oci_registry.OCIError):
            raise AccessError(f"failed to configure login options: unable to load Docker config from Secret "
                              f"'{secret_name}'") from None
        if creds is None:
            raise AccessError(f"failed to configure login options: no auth config for '{host}' in the "
                              f"docker-registry Secret '{secret_name}'")
        username, password = creds.username, creds.password
    else:
        username = (data.get("username") or b"").decode()
        password = (data.get("password") or b"").decode()
    if not username and not password:
        return None
    if not username or not password:
        raise AccessError(f"failed to configure login options: invalid '{secret_name}' secret data: required "
                          "fields 'username' and 'password'")
    return oci_registry.Credentials(username, password)


# --------------------------------------------------------------------------- HTTP


def _status_text(code: int) -> str:
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def http_get(href: str, access: RepositoryAccess, *, max_size: int, too_big: str = "") -> bytes:
    """GET ``href`` as Helm's HTTP getter (basic auth for the repository's own host, or everywhere with
    ``passCredentials``); redirects followed; FetchError on any failure, including a body over
    ``max_size`` bytes (message ``too_big``)."""
    base = urllib.parse.urlsplit(access.url)
    deadline = time.monotonic() + access.timeout
    context = access.ssl_context() or ssl.create_default_context()
    url = href
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f'Get "{url}": unsupported protocol scheme "{parts.scheme}"')
        if not parts.netloc:
            raise FetchError(f'Get "{url}": http: no Host in request URL')
        headers = {"User-Agent": oci_registry.USER_AGENT}
        same_host = (parts.scheme, parts.netloc) == (base.scheme, base.netloc)
        if access.basic and all(access.basic) and (access.pass_credentials or same_host):
            headers["Authorization"] = oci_registry.Credentials(*access.basic).basic_header()
        remaining = max(0.001, deadline - time.monotonic())
        conn = (http.client.HTTPSConnection(parts.netloc, timeout=remaining, context=context)
                if parts.scheme == "https" else http.client.HTTPConnection(parts.netloc, timeout=remaining))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                url = urllib.parse.urljoin(url, resp.getheader("Location"))
                continue
            if resp.status != 200:
                raise FetchError(f"failed to fetch {href} : {_status_text(resp.status)}")
            body = bytearray()
            while True:
                if conn.sock is not None:
                    conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                body += chunk
                if len(body) > max_size:
                    raise FetchError(too_big or f"response from {href} exceeds {max_size} bytes")
            return bytes(body)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            detail = oci_registry.describe_network_error(exc, parts.netloc)
            if detail == "context deadline exceeded":
                detail += " (Client.Timeout exceeded while awaiting headers)"
            raise FetchError(f'Get "{url}": {detail}') from None
        finally:
            conn.close()
    raise FetchError(f'Get "{url}": stopped after {_MAX_REDIRECTS} redirects')


def download_index(access: RepositoryAccess, repo_url: str) -> bytes:
    """The raw ``index.yaml`` of an HTTP repository (``<url>/index.yaml``, at most 50 MiB)."""
    parts = urllib.parse.urlsplit(repo_url)
    path = (parts.path.rstrip("/") + "/index.yaml") if parts.path.strip("/") else "/index.yaml"
    href = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    return http_get(href, access, max_size=helm_index.MAX_INDEX_SIZE,
                    too_big=f"index exceeds the maximum index file size of {helm_index.MAX_INDEX_SIZE} bytes")


def download_chart(access: RepositoryAccess, chart_version: dict) -> bytes:
    """The archive of a chart version of an HTTP repository (its first URL, relative to the repository)."""
    urls = chart_version.get("urls") or []
    if not urls:
        raise FetchError(f"chart '{chart_version.get('name')}' has no downloadable URLs")
    href = helm_index.resolve_chart_url(access.url, urls[0])
    return http_get(href, access, max_size=helm_index.MAX_CHART_SIZE,
                    too_big=f"size of chart exceeds '{helm_index.MAX_CHART_SIZE}' bytes limit")


class HTTPChartRepository:
    """Charts of an HTTP repository: its index read from ``index_file`` (a HelmRepository's stored
    artifact) or else downloaded, once."""

    def __init__(self, access: RepositoryAccess, index_file: Path | None = None):
        self.access, self.index_file = access, index_file
        self.index: helm_index.Index | None = None

    def chart_version(self, name: str, wanted: str) -> dict:
        if self.index is None:
            if self.index_file is not None:
                try:
                    data = self.index_file.read_bytes()
                except OSError as exc:
                    raise FetchError(f"failed to load index: {exc.strerror or exc}") from None
            else:
                data = download_index(self.access, self.access.url)
            try:
                self.index = helm_index.load_index(data)
            except helm_index.IndexError_ as exc:
                raise FetchError(f"failed to load index: {exc}") from None
        return self.index.chart_version(name, wanted)

    def download(self, chart_version: dict) -> bytes:
        return download_chart(self.access, chart_version)


# --------------------------------------------------------------------------- OCI charts


def oci_tag_to_version(tag: str) -> str:
    return tag.replace(OCI_PLUS, "+")


class OCIChartRepository:
    """Charts in an OCI registry (``oci://host/path``; a chart ``name`` lives at ``host/path/name``)."""

    def __init__(self, access: RepositoryAccess, helm: HelmCLI):
        self.access, self.helm = access, helm
        parts = urllib.parse.urlsplit(access.url)
        self.registry, self.path = parts.netloc, parts.path.strip("/")
        self._logged_in = False

    def login(self) -> None:
        """``helm registry login`` with the credentials, when there are any (Flux logs in first)."""
        creds = self.access.oci_credentials
        if creds is None or self._logged_in:
            return
        args = ["registry", "login", self.registry, "--username", creds.username, "--password-stdin"]
        if self.access.insecure:
            args.append("--plain-http")
        self.helm.run(*args, *self.helm.tls_flags(self.access.tls), stdin=creds.password)
        self._logged_in = True

    def chart_ref(self, name: str) -> oci_registry.Reference:
        return oci_registry.Reference(self.registry, f"{self.path}/{name}".strip("/"))

    def tags(self, name: str) -> list[str]:
        """The chart's versions: tags with ``_`` read as ``+``, only strict semantic versions (as Helm)."""
        ref = self.chart_ref(name)
        with oci_registry.client_for(ref, credentials=self.access.oci_credentials, insecure=self.access.insecure,
                                     ssl_context=self.access.ssl_context(), timeout=self.access.timeout) as client:
            try:
                raw = client.list_tags(ref.repository)
            except oci_registry.OCIError as exc:
                raise FetchError(f'could not fetch tags for "oci://{ref.registry}/{ref.repository}": {exc}') from None
        versions = []
        for tag in raw:
            version = oci_tag_to_version(tag)
            try:
                semver.parse_version(version)
            except semver.InvalidVersion:
                continue
            versions.append(version)
        return versions

    def chart_version(self, name: str, wanted: str) -> dict:
        """Flux's OCI version choice: a version is taken as is, a range resolved against the tags."""
        url = f"oci://{self.chart_ref(name).name}"
        try:
            semver.parse_version(wanted)
            return {"name": name, "version": wanted, "urls": [f"{url}:{wanted}"]}
        except semver.InvalidVersion:
            pass
        try:
            semver.new_constraint("*" if wanted in ("", "*") else wanted)
        except semver.InvalidConstraint as exc:
            raise FetchError(str(exc)) from None
        tags = self.tags(name)
        if not tags:
            raise FetchError(f"unable to locate any tags in provided repository: {name}")
        version = semver.latest_matching(tags, wanted)
        if version is None:  # Flux reports every OCI lookup failure as external (a pull error)
            raise FetchError(f"could not locate a version matching provided version string {wanted}")
        return {"name": name, "version": version, "urls": [f"{url}:{version}"]}

    def download(self, chart_version: dict) -> bytes:
        """``helm pull`` of the chart version; the archive's bytes."""
        self.login()
        url = chart_version["urls"][0].rpartition(":")[0]
        dest = self.helm.home / "pull" / os.urandom(4).hex()
        dest.mkdir(parents=True)
        args = ["pull", url, "--version", chart_version["version"], "--destination", str(dest)]
        if self.access.insecure:
            args.append("--plain-http")
        try:
            self.helm.run(*args, *self.helm.tls_flags(self.access.tls))
        except HelmError as exc:
            raise FetchError(f"failed to get '{chart_version['urls'][0]}': {exc}") from None
        archives = list(dest.glob("*.tgz"))
        if len(archives) != 1:
            raise FetchError(f"failed to get '{chart_version['urls'][0]}': helm pull wrote no chart")
        data = archives[0].read_bytes()
        shutil.rmtree(dest, ignore_errors=True)
        return data
