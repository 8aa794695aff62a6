"""An informer tells its owner why it cannot list or watch (``on_error``), e.g. a user without RBAC, and
that it recovered once it may: the UI shows "forbidden" instead of an empty graph."""
from __future__ import annotations

import threading
import time

from controllers.api.builtin import CONFIGMAP
from controllers.runtime.kube import Forbidden
from controllers.runtime.watch import Informer

ROLE = "rbac.authorization.k8s.io/v1"


def test_on_error_hears_forbidden_then_recovery(kube, namespace):
    from controllers.api.types import ResourceType

    role_rt = ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True)
    binding_rt = ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True)
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}}, namespace)
    heard: list = []
    changed = threading.Event()

    def on_error(exc):
        heard.append(exc)
        changed.set()

    informer = Informer(kube.impersonate("bob"), CONFIGMAP, lambda *a: None, namespace=namespace,
                        backoff_base=0.1, backoff_cap=0.2, on_error=on_error).start()
    try:
        assert changed.wait(10)
        assert isinstance(heard[0], Forbidden) and 'User "bob" cannot list resource "configmaps"' in heard[0].message
        assert informer.last_error is heard[0] and not informer.synced.is_set()
        kube.create(role_rt, {"apiVersion": ROLE, "kind": "Role", "metadata": {"name": "read"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}]}, namespace)
        kube.create(binding_rt, {"apiVersion": ROLE, "kind": "RoleBinding", "metadata": {"name": "bob"},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"},
                                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]},
                    namespace)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (heard and heard[-1] is None):
            time.sleep(0.05)
        assert heard[-1] is None and informer.last_error is None
        assert informer.wait_synced(5) and informer.get(f"{namespace}/seen") is not None
    finally:
        informer.stop()
