"""Registry credentials and TLS from Kubernetes objects, shared by every controller that talks to a registry
(the OCIRepository of the source-controller, the image-reflector-controller's ImageRepository and ImagePolicy).

- :func:`registry_credentials`: basic credentials for a registry from image pull secrets — ``secretRef``
  first, then the ``imagePullSecrets`` of ``serviceAccountName`` — read as Kubernetes' keychain reads them
  (``.dockerconfigjson``, or the older ``.dockercfg``; a Secret that is neither is skipped);
- :func:`tls_context`: the client TLS context of a ``certSecretRef`` (``ca.crt`` and/or ``tls.crt``+``tls.key``).

Both raise :class:`controllers.lib.credentials.SecretError` naming the object, never a value.
"""
from __future__ import annotations

import ssl

from controllers.api.builtin import SERVICE_ACCOUNT
from controllers.lib import credentials
from controllers.lib.credentials import SecretError
from controllers.lib.oci.registry import Credentials, Reference, credentials_from_docker_config
from controllers.runtime.kube import KubeClient, KubeError


def docker_config_of(data: dict[str, bytes]) -> bytes | None:
    """The Docker config JSON of an image pull secret (``.dockerconfigjson`` or the old ``.dockercfg``)."""
    return data.get(".dockerconfigjson") or data.get(".dockercfg")


def pull_secret_names(kube: KubeClient, namespace: str, secret_name: str = "",
                      service_account: str = "") -> list[str]:
    """``secret_name`` (when set) followed by the service account's image pull secrets."""
    names = [secret_name] if secret_name else []
    if service_account:
        try:
            account = kube.get(SERVICE_ACCOUNT, service_account, namespace)
        except KubeError as exc:
            raise SecretError(f"failed to get service account '{namespace}/{service_account}': "
                              f"{exc.message}") from None
        names += [s["name"] for s in account.get("imagePullSecrets") or [] if s.get("name")]
    return names


def registry_credentials(kube: KubeClient, namespace: str, reference: Reference, *, secret_name: str = "",
                         service_account: str = "") -> Credentials | None:
    """The first credentials of the pull secrets that match ``reference``'s registry (None: anonymous)."""
    for name in pull_secret_names(kube, namespace, secret_name, service_account):
        config = docker_config_of(credentials.get_secret(kube, namespace, name))
        if config is None:
            continue  # not an image pull secret: ignored, as Kubernetes' keychain does
        try:
            found = credentials_from_docker_config(config, reference)
        except ValueError as exc:
            raise SecretError(f"{exc} in secret '{namespace}/{name}'") from None
        if found is not None:
            return found
    return None


def tls_context(kube: KubeClient, namespace: str, secret_name: str) -> ssl.SSLContext | None:
    """The TLS context of a ``certSecretRef`` Secret (None without one: system CAs)."""
    if not secret_name:
        return None
    tls = credentials.TLSMaterial.from_secret(credentials.get_secret(kube, namespace, secret_name), secret_name)
    if tls is None:
        raise SecretError(f"secret '{namespace}/{secret_name}' must contain 'ca.crt' or 'tls.crt' and 'tls.key'")
    return tls.ssl_context()


def proxy_address(kube: KubeClient, namespace: str, secret_name: str) -> str:
    """The proxy URL of a ``proxySecretRef`` Secret ('' without one)."""
    if not secret_name:
        return ""
    return credentials.proxy_url(credentials.get_secret(kube, namespace, secret_name), f"{namespace}/{secret_name}")
