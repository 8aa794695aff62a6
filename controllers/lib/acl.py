"""Cross-namespace references as Flux's runtime ACL allows them (``--no-cross-namespace-refs``, and the
``spec.accessFrom`` of the referenced object), with Flux's messages."""
from __future__ import annotations

from controllers.api.builtin import NAMESPACE
from controllers.lib.labels import matches
from controllers.runtime.kube import KubeClient, KubeError


class AccessDenied(Exception):
    """The reference is not allowed; the message is Flux's."""


def check_cross_namespace(kind: str, namespace: str, name: str, own_namespace: str, blocked: bool) -> None:
    """AccessDenied when cross-namespace references are blocked and ``namespace`` is not ``own_namespace``."""
    if blocked and namespace != own_namespace:
        raise AccessDenied(f"cannot access '{kind}/{namespace}/{name}', cross-namespace references have been "
                           "blocked")


def check_access_from(kube: KubeClient, own_namespace: str, namespace: str, name: str,
                      access_from: dict | None) -> None:
    """Flux's HasAccessToRef: the same namespace always; another only when one of the referenced object's
    ``accessFrom.namespaceSelectors`` matches the labels of ``own_namespace``."""
    if not namespace or namespace == own_namespace:
        return
    if access_from is None:
        raise AccessDenied(f"'{namespace}/{name}' can't be accessed due to missing ACL labels on 'accessFrom'")
    try:
        labels = (kube.get(NAMESPACE, own_namespace).get("metadata") or {}).get("labels") or {}
    except KubeError as exc:
        raise AccessDenied(exc.message) from None
    if any(matches(labels, s.get("matchLabels")) for s in access_from.get("namespaceSelectors") or []):
        return
    raise AccessDenied(f"'{namespace}/{name}' can't be accessed due to ACL labels mismatch on namespace "
                       f"'{own_namespace}'")
