"""Kubeconfig authentication against the real local control plane: exec plugins that return client
certificates (re-run when expired), proxy-url through a real CONNECT proxy, the legacy auth-provider through
the official client's loader (imported only then), and one clear line for what fluxpy does not support."""
from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from controllers.api.builtin import NAMESPACE
from controllers.runtime.kube import KubeClient, KubeConfigError
from servers.kubeconfigs import ConnectProxy, HeaderRecorder, exec_kubeconfig


def _in(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"])
def test_exec_plugin_client_certificate_authenticates(kubeconfig, tmp_path, api_version):
    path, runs = exec_kubeconfig(kubeconfig, tmp_path, api_version=api_version)
    client = KubeClient.from_kubeconfig(path)
    names = {n["metadata"]["name"] for n in client.list(NAMESPACE)["items"]}
    assert "default" in names
    client.list(NAMESPACE)
    assert runs.read_text() == "1"  # no expiry: the plugin ran once


def test_exec_plugin_is_run_again_when_its_credential_expires(kubeconfig, tmp_path):
    path, runs = exec_kubeconfig(kubeconfig, tmp_path, expires=_in(10))  # within the 30 s refresh margin
    client = KubeClient.from_kubeconfig(path)
    for _ in range(3):
        client.list(NAMESPACE)
    assert int(runs.read_text()) >= 3

    fresh_path, fresh_runs = exec_kubeconfig(kubeconfig, tmp_path / "..", expires=_in(3600))
    fresh = KubeClient.from_kubeconfig(fresh_path)
    for _ in range(3):
        fresh.list(NAMESPACE)
    assert fresh_runs.read_text() == "1"


def test_exec_plugin_missing_command_gives_the_install_hint(kubeconfig, tmp_path):
    path, _ = exec_kubeconfig(kubeconfig, tmp_path)
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"]["exec"].update(command="no-such-credential-plugin", installHint="brew install it")
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(KubeConfigError, match="'no-such-credential-plugin' not found: brew install it"):
        KubeClient.from_kubeconfig(path).list(NAMESPACE)


def test_proxy_url_tunnels_through_a_connect_proxy(kubeconfig, tmp_path):
    proxy = ConnectProxy()
    try:
        config = yaml.safe_load(kubeconfig.read_text())
        config["clusters"][0]["cluster"]["proxy-url"] = proxy.url
        path = tmp_path / "proxied.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        client = KubeClient.from_kubeconfig(path)
        assert any(n["metadata"]["name"] == "default" for n in client.list(NAMESPACE)["items"])
        server = config["clusters"][0]["cluster"]["server"].split("://", 1)[1]
        assert proxy.tunnels == [server]
    finally:
        proxy.close()


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_oidc_auth_provider_sends_its_id_token(tmp_path):
    server = HeaderRecorder()
    try:
        token = _jwt({"iss": "https://issuer.example", "sub": "jane", "exp": int(time.time()) + 3600})
        path = tmp_path / "oidc.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "oidc",
            "clusters": [{"name": "c", "cluster": {"server": server.url}}],
            "contexts": [{"name": "oidc", "context": {"cluster": "c", "user": "jane"}}],
            "users": [{"name": "jane", "user": {"auth-provider": {"name": "oidc", "config": {
                "client-id": "kubernetes", "idp-issuer-url": "https://issuer.example", "id-token": token}}}}]}))
        KubeClient.from_kubeconfig(path).version()
        assert server.headers[-1]["Authorization"] == f"Bearer {token}"
    finally:
        server.close()


def test_the_kubernetes_package_is_imported_only_for_an_auth_provider(kubeconfig):
    script = textwrap.dedent(f"""
        import sys
        from controllers.runtime.kube import KubeClient
        from controllers.api.builtin import NAMESPACE
        KubeClient.from_kubeconfig({str(kubeconfig)!r}).list(NAMESPACE)
        print("kubernetes" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("section,field,line", [
    ("user", "as-uid", "kubeconfig user 'admin': field 'as-uid' is not supported by fluxpy"),
    ("cluster", "proxy-url", "proxy-url 'socks5://127.0.0.1:1080' is not supported by fluxpy"),
])
def test_unsupported_fields_fail_with_one_line(kubeconfig, tmp_path, section, field, line):
    config = yaml.safe_load(kubeconfig.read_text())
    entry = config[f"{section}s"][0]
    entry[section][field] = "socks5://127.0.0.1:1080" if field == "proxy-url" else "1234"
    config["users"][0]["name"] = config["contexts"][0]["context"]["user"] = "admin"
    path = tmp_path / "odd.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(KubeConfigError) as err:
        KubeClient.from_kubeconfig(path)
    assert line in str(err.value) and "\n" not in str(err.value)
