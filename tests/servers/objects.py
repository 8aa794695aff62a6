"""The objects the controller tests create: sources and Secrets, applied server-side with one field manager.

    from servers.objects import apply_secret, apply_source
"""
from __future__ import annotations

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
