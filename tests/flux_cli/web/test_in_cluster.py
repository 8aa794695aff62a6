"""The in-cluster UI: it acts for the user a trusted proxy names (impersonation), each identity sees what its
own RBAC allows, requests not from the proxy are refused, and actions are off unless allowed."""
from __future__ import annotations

import http.client
import json

import pytest

from controllers.api.kustomize import KUSTOMIZATION
from flux_cli.web import launch
from servers.ui import make_pipeline

from controllers.api.types import ResourceType

SECRET = "proxy-shared-secret"
CLUSTER_ROLE = ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False)
ROLE_BINDING = ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True)


def get(port: int, path: str, headers: dict, method: str = "GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data) if resp.getheader("Content-Type") == "application/json" else data


@pytest.fixture
def reader_of(kube, namespace):
    """A ClusterRole reading Kustomizations, bound to the group ``readers`` in the test's namespace only."""
    name = f"ui-reader-{namespace}"
    kube.create(CLUSTER_ROLE, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                               "metadata": {"name": name}, "rules": [
                                   {"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"],
                                    "verbs": ["get", "list", "watch", "patch"]}]})
    kube.create(ROLE_BINDING, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                               "metadata": {"name": "readers", "namespace": namespace},
                               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                             "name": "readers"}]}, namespace)
    yield name
    kube.delete(CLUSTER_ROLE, name)


@pytest.fixture
def in_cluster_ui(kube, namespace, tmp_path, flux_crds):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    running = []

    def start(**kw):
        ui = launch.in_cluster(address="127.0.0.1", port=0, namespaces=(namespace,), proxy_secret_file=str(secret_file),
                               kube=kube, **kw)
        running.append(ui)
        return ui.server.port

    yield start
    for ui in running:
        ui.stop()


def test_each_identity_sees_its_own_rbac_and_untrusted_requests_are_refused(kube, namespace, reader_of,
                                                                            in_cluster_ui):
    make_pipeline(kube, namespace)
    port = in_cluster_ui()
    proxy = {"Host": "ui.flux-system.svc", "X-Fluxpy-Proxy-Secret": SECRET}
    status, graph = get(port, "/api/graph", {**proxy, "X-Forwarded-User": "carol", "X-Forwarded-Groups": "readers"})
    assert status == 200, graph
    ids = {n["id"] for n in graph["nodes"]}
    assert f"Kustomization/{namespace}/apps" in ids
    assert {f["kind"] for f in graph["forbidden"]} >= {"GitRepository", "HelmRelease"}  # not granted to readers
    assert "Kustomization" not in {f["kind"] for f in graph["forbidden"]}
    assert graph["identity"] == "carol"

    status, other = get(port, "/api/graph", {**proxy, "X-Forwarded-User": "dave"})
    assert status == 200 and other["nodes"] == []
    assert 'User "dave" cannot list resource "kustomizations"' in {
        f["kind"]: f["message"] for f in other["forbidden"]}["Kustomization"]

    # not from the proxy: no secret, a wrong one, no user
    assert get(port, "/api/graph", {"Host": "x", "X-Forwarded-User": "carol"})[0] == 403
    assert get(port, "/api/graph", {"Host": "x", "X-Fluxpy-Proxy-Secret": "guess", "X-Forwarded-User": "carol"})[0] == 403
    assert get(port, "/api/graph", proxy)[0] == 401


def test_read_only_by_default_and_actions_when_allowed(kube, namespace, reader_of, in_cluster_ui):
    make_pipeline(kube, namespace)
    headers = {"Host": "ui.flux-system.svc", "X-Fluxpy-Proxy-Secret": SECRET, "X-Forwarded-User": "carol",
               "X-Forwarded-Groups": "readers", "Content-Type": "application/json"}
    target = {"id": f"Kustomization/{namespace}/apps", "action": "suspend"}
    read_only = in_cluster_ui()
    status, page = get(read_only, "/", headers)
    token = page.split(b'name="fluxpy-token" content="')[1].split(b'"')[0].decode()
    status, answer = get(read_only, "/api/action", {**headers, "X-Fluxpy-Token": token}, "POST", target)
    assert status == 403 and answer["error"] == "read-only"
    assert not kube.get(KUSTOMIZATION, "apps", namespace)["spec"].get("suspend")

    allowed = in_cluster_ui(allow_actions=True)
    status, page = get(allowed, "/", headers)
    token = page.split(b'name="fluxpy-token" content="')[1].split(b'"')[0].decode()
    status, answer = get(allowed, "/api/action", {**headers, "X-Fluxpy-Token": token}, "POST", target)
    assert status == 202, answer
    assert kube.get(KUSTOMIZATION, "apps", namespace)["spec"]["suspend"] is True  # as carol, who may patch


def test_it_refuses_to_start_without_a_way_to_trust_the_proxy(kube):
    with pytest.raises(ValueError, match="in-cluster"):
        launch.in_cluster(address="127.0.0.1", port=0, kube=kube)


def test_over_mtls_only_the_proxys_certificate_gets_in(kube, namespace, reader_of, tmp_path, flux_crds):
    import ssl

    from servers.tls import LOOPBACK_NAMES, issue, new_ca

    serving_ca, proxy_ca = new_ca("ui-serving-ca"), new_ca("proxy-ca")
    files = {}
    for name, issued in (("ui", issue(serving_ca, "ui", server_names=LOOPBACK_NAMES)),
                         ("proxy", issue(proxy_ca, "oauth2-proxy", client=True)),
                         ("stranger", issue(new_ca("someone-else"), "oauth2-proxy", client=True))):
        files[name] = (tmp_path / f"{name}.crt", tmp_path / f"{name}.key")
        files[name][0].write_bytes(issued.cert_pem)
        files[name][1].write_bytes(issued.key_pem)
    (tmp_path / "proxy-ca.crt").write_bytes(proxy_ca.cert_pem)
    make_pipeline(kube, namespace)
    ui = launch.in_cluster(address="127.0.0.1", port=0, namespaces=(namespace,), kube=kube,
                           tls_cert=str(files["ui"][0]), tls_key=str(files["ui"][1]),
                           proxy_ca=str(tmp_path / "proxy-ca.crt"))
    try:
        assert ui.url.startswith("https://127.0.0.1:")

        def client(who: str | None) -> http.client.HTTPSConnection:
            context = ssl.create_default_context(cadata=serving_ca.cert_pem.decode())
            if who:
                context.load_cert_chain(*map(str, files[who]))
            return http.client.HTTPSConnection("127.0.0.1", ui.server.port, context=context, timeout=20)

        conn = client("proxy")
        conn.request("GET", "/api/graph", headers={"X-Forwarded-User": "carol", "X-Forwarded-Groups": "readers"})
        resp = conn.getresponse()
        graph = json.loads(resp.read())
        assert resp.status == 200 and graph["identity"] == "carol"
        assert f"Kustomization/{namespace}/apps" in {n["id"] for n in graph["nodes"]}
        for who in (None, "stranger"):  # the handshake fails: no handler runs, no identity is read
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                conn = client(who)
                conn.request("GET", "/api/graph", headers={"X-Forwarded-User": "carol"})
                conn.getresponse().read()
    finally:
        ui.stop()
