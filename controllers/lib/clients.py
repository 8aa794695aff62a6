"""The clients a reconciler applies with, as Flux's kustomize- and helm-controller build them.

- ``spec.kubeConfig.secretRef``: a remote cluster's kubeconfig from a Secret (key ``value`` / ``value.yaml``
  unless ``key`` names one), restricted to inline credentials (:func:`restrict_kubeconfig`);
- ``spec.serviceAccountName`` (else the controller's ``--default-service-account``): every request
  impersonates ``system:serviceaccount:<namespace>:<name>``.

Failures are :class:`ClientError` with Flux's message; the reconciler turns it into its condition.
"""
from __future__ import annotations

import base64
import copy
import os
import tempfile
import threading
from typing import Mapping

import yaml

from controllers.api.builtin import SECRET
from controllers.api.objects import dig
from controllers.runtime.kube import KubeClient, KubeConfigError, KubeError

_FILE_KEYS = {"clusters": ("certificate-authority",),
              "users": ("client-certificate", "client-key", "tokenFile", "token-file")}


class ClientError(Exception):
    """The object's client cannot be built (its kubeconfig Secret is missing or invalid)."""


def restrict_kubeconfig(config: dict, *, allow_exec: bool = False, allow_insecure_tls: bool = False) -> dict:
    """A kubeconfig of a remote cluster as Flux uses it: inline data only (no paths into the controller's
    file system), no ``exec`` plugin or ``insecure-skip-tls-verify`` unless allowed."""
    config = copy.deepcopy(config)
    for section, keys in _FILE_KEYS.items():
        for entry in config.get(section) or []:
            body = (entry or {}).get(section[:-1]) or {}
            for k in keys:
                body.pop(k, None)
            if section == "users" and not allow_exec:
                body.pop("exec", None)
            if section == "clusters" and not allow_insecure_tls:
                body.pop("insecure-skip-tls-verify", None)
    return config


class TargetClients:
    """Builds (and caches, per impersonated user) the client an object is applied with."""

    def __init__(self, default_service_account: str = "", *, allow_exec: bool = False,
                 allow_insecure_tls: bool = False):
        self.default_service_account = default_service_account
        self.allow_exec = allow_exec
        self.allow_insecure_tls = allow_insecure_tls
        self._lock = threading.Lock()
        self._impersonated: dict[str, KubeClient] = {}

    def for_object(self, kube: KubeClient, obj: Mapping) -> tuple[KubeClient, bool]:
        """The client that applies ``obj``: ``kube``, or a remote cluster's (``spec.kubeConfig``), impersonating
        its service account; and whether it is remote. ClientError when the kubeconfig cannot be used."""
        namespace = obj["metadata"]["namespace"]
        account = dig(obj, "spec.serviceAccountName") or self.default_service_account
        user = f"system:serviceaccount:{namespace}:{account}" if account else ""
        if dig(obj, "spec.kubeConfig"):
            try:
                remote = self.remote_client(kube, dig(obj, "spec.kubeConfig"), namespace)
            except (KubeError, KubeConfigError) as exc:
                raise ClientError(str(getattr(exc, "message", "") or exc)) from None
            return (remote.impersonate(user) if user else remote), True
        if not user:
            return kube, False
        with self._lock:
            client = self._impersonated.get(user)
            if client is None:
                client = self._impersonated[user] = kube.impersonate(user)
        return client, False

    def remote_client(self, kube: KubeClient, ref: Mapping, namespace: str) -> KubeClient:
        """A client for the kubeconfig in ``kubeConfig.secretRef``; only inline credentials are used, exec
        plugins and disabled TLS checks only when allowed."""
        secret_ref = ref.get("secretRef") or {}
        if not secret_ref.get("name"):
            raise ClientError("invalid .spec.kubeConfig, neither .spec.kubeConfig.provider nor "
                              ".spec.kubeConfig.secretRef is set (cloud provider kubeconfigs are not supported)")
        where = f"{namespace}/{secret_ref['name']}"
        try:
            secret = kube.get(SECRET, secret_ref["name"], namespace)
        except KubeError as exc:
            raise ClientError(f"unable to read KubeConfig secret '{where}' error: {exc.message}") from None
        data = secret.get("data") or {}
        key = secret_ref.get("key")
        if key:
            if key not in data:
                raise ClientError(f"KubeConfig secret '{where}' does not contain a '{key}' key with a kubeconfig")
        else:
            key = next((k for k in ("value", "value.yaml") if k in data), None)
            if key is None:
                raise ClientError(f"KubeConfig secret '{where}' does not contain a 'value' key with a kubeconfig")
        try:
            config = yaml.safe_load(base64.b64decode(data[key]))
        except (ValueError, yaml.YAMLError) as exc:
            raise ClientError(f"KubeConfig secret '{where}' holds no valid kubeconfig: {exc}") from None
        if not isinstance(config, dict):
            raise ClientError(f"KubeConfig secret '{where}' holds no valid kubeconfig")
        config = restrict_kubeconfig(config, allow_exec=self.allow_exec, allow_insecure_tls=self.allow_insecure_tls)
        fd, path = tempfile.mkstemp(prefix="kubeconfig-", suffix=".yaml")
        try:
            with os.fdopen(fd, "w") as f:
                yaml.safe_dump(config, f)
            return KubeClient.from_kubeconfig(path)
        finally:
            os.unlink(path)
