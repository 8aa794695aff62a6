"""The objects the controller tests create: sources and Secrets, applied server-side with one field manager,
and a HelmRelease with its release in Helm's storage.

    from servers.objects import apply_secret, apply_source
"""
from __future__ import annotations

import base64
import gzip
import json

#: The field manager of everything the tests apply.
MANAGER = "fluxpy-tests"


def apply_source(kube, kind, namespace: str, name: str, spec: dict) -> dict:
    """Create or update a source object (``kind`` a controllers.api Kind) with ``spec``."""
    body = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name, "namespace": namespace},
            "spec": spec}
    return kube.apply(body, field_manager=MANAGER)


def apply_secret(kube, namespace: str, name: str, string_data: dict[str, str], type_: str = "Opaque") -> None:
    """Create or update a Secret holding ``string_data``."""
    kube.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "type": type_, "stringData": string_data}, field_manager=MANAGER)


def stored_helm_release(kube, namespace: str, name: str, version: int, manifest: str,
                        deployed: str = "2026-01-01T00:00:00Z") -> None:
    """A HelmRelease whose latest release (``version``) is in Helm's storage with ``manifest``, as the
    helm-controller leaves it: the object, its ``status.history`` and the ``sh.helm.release.v1`` Secret."""
    from controllers.api.builtin import SECRET
    from controllers.api.helm import HELM_RELEASE

    kube.create(HELM_RELEASE, {"apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
                               "metadata": {"name": name, "namespace": namespace},
                               "spec": {"interval": "1h", "chartRef": {"kind": "OCIRepository", "name": name}}},
                namespace)
    kube.patch(HELM_RELEASE, name, {"status": {"storageNamespace": namespace, "history": [{
        "name": name, "namespace": namespace, "version": version, "chartName": name, "chartVersion": "1.0.0",
        "configDigest": "sha256:0", "digest": "sha256:1", "firstDeployed": deployed, "lastDeployed": deployed,
        "status": "deployed"}]}}, namespace, subresource="status")
    release = base64.b64encode(gzip.compress(json.dumps({"name": name, "manifest": manifest}).encode()))
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"sh.helm.release.v1.{name}.v{version}"},
                         "type": "helm.sh/release.v1", "data": {"release": base64.b64encode(release).decode()}},
                namespace)
