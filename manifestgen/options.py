"""Options of the install manifests (what ``fluxpy install`` and ``fluxpy bootstrap`` pass to manifestgen)."""
from __future__ import annotations

import dataclasses
import re

from controllers import __version__
from controllers.api import kinds
from controllers.api.meta import is_dns1123_label, is_dns1123_subdomain

#: log levels the controllers accept (as Flux's ``--log-level``).
LOG_LEVELS = ("debug", "info", "error")

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
#: components that are not controllers: rendered by manifestgen, but with no CRDs, no Lease and no controller
#: flags. ``ui`` is the in-cluster ``fluxpy ui`` (docs/ui.md, section 2).
ADDONS: tuple[str, ...] = ("ui",)

_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?(/[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)*$")


@dataclasses.dataclass
class InstallOptions:
    """What to install, and how the controllers are configured. Call :meth:`validate` before use."""

    #: fluxpy version: the controller image tag (``v<version>``) and the ``app.kubernetes.io/version`` label.
    version: str = __version__
    #: namespace the controllers run in (also the ``app.kubernetes.io/instance`` label and the RBAC name suffix).
    namespace: str = "flux-system"
    #: controllers to install.
    components: list[str] = dataclasses.field(default_factory=lambda: list(kinds.COMPONENTS))
    #: controllers installed in addition to ``components`` (e.g. the image automation controllers).
    components_extra: list[str] = dataclasses.field(default_factory=list)
    #: container registry (and path) the controller image is pulled from.
    registry: str = "ghcr.io/fluxpy"
    #: name of a docker-registry Secret in ``namespace`` used to pull the image; "" for none.
    image_pull_secret: str = ""
    #: whether the controllers watch every namespace (False: only their own).
    watch_all_namespaces: bool = True
    #: whether to install the NetworkPolicies that isolate the controllers' namespace.
    network_policy: bool = True
    #: controllers' log level: one of :data:`LOG_LEVELS`.
    log_level: str = "info"
    #: the cluster's DNS domain, used in the in-cluster addresses of the events and artifact servers.
    cluster_domain: str = "cluster.local"
    #: taint keys the controller pods tolerate (operator Exists).
    toleration_keys: list[str] = dataclasses.field(default_factory=list)
    #: whether the ui component may reconcile, suspend and resume (``--allow-actions``); read-only otherwise.
    ui_actions: bool = False

    @property
    def requested(self) -> list[str]:
        """``components`` then ``components_extra``, without duplicates, in order (controllers and add-ons)."""
        return list(dict.fromkeys([*self.components, *self.components_extra]))

    @property
    def all_components(self) -> list[str]:
        """The controllers to install: :attr:`requested` without the :data:`ADDONS`.

        Everything that waits for or counts "the components" (``fluxpy install``'s and bootstrap's health wait,
        the CRDs, the controllers' RBAC subjects) iterates this list, and so never waits for the ui: it holds
        no leader Lease, and on the embedded control plane (no kubelet) its Deployment never becomes Available,
        so a wait on it would only time out. The add-ons are in :attr:`addons`.
        """
        return [name for name in self.requested if name not in ADDONS]

    @property
    def addons(self) -> list[str]:
        """The requested components that are not controllers (``ui``), in order."""
        return [name for name in self.requested if name in ADDONS]

    @property
    def image_tag(self) -> str:
        """The controller image tag, ``v<version>``."""
        return "v" + self.version.removeprefix("v")

    @property
    def image(self) -> str:
        """The controller image reference, ``<registry>/fluxpy-controllers:v<version>``."""
        return f"{self.registry.rstrip('/')}/fluxpy-controllers:{self.image_tag}"

    def validate(self) -> None:
        """Raise ValueError naming the first invalid option and what is accepted instead."""
        valid = [*kinds.COMPONENTS, *kinds.COMPONENTS_EXTRA, *ADDONS]
        unknown = [c for c in self.requested if c not in valid]
        if unknown:
            raise ValueError(
                f"unknown component(s) {', '.join(repr(c) for c in unknown)}; valid components are: {', '.join(valid)}"
            )
        if self.ui_actions and "ui" not in self.addons:
            raise ValueError("the ui actions option needs the ui component: add it with --components-extra=ui")
        if not is_dns1123_label(self.namespace):
            raise ValueError(
                f"invalid namespace {self.namespace!r}: must be a DNS-1123 label (at most 63 lowercase alphanumeric "
                "characters or '-', starting and ending with an alphanumeric character)"
            )
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"unsupported log level {self.log_level!r}, must be one of: {', '.join(LOG_LEVELS)}")
        if not self.version or not _LABEL_VALUE.match(self.image_tag) or len(self.image_tag) > 63:
            raise ValueError(f"invalid version {self.version!r}: must be usable as an image tag and label value")
        if not _REGISTRY.match(self.registry.rstrip("/")):
            raise ValueError(f"invalid registry {self.registry!r}: expected a host and path such as ghcr.io/fluxpy")
        if self.image_pull_secret and not is_dns1123_subdomain(self.image_pull_secret):
            raise ValueError(f"invalid image pull secret name {self.image_pull_secret!r}: must be a DNS-1123 subdomain")
        if not is_dns1123_subdomain(self.cluster_domain):
            raise ValueError(f"invalid cluster domain {self.cluster_domain!r}: must be a DNS-1123 subdomain")
        for key in self.toleration_keys:
            if not _is_label_key(key):
                raise ValueError(f"invalid toleration key {key!r}: must be a label key such as node.example.com/role")


def _is_label_key(value: str) -> bool:
    prefix, _, name = value.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))
