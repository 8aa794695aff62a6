"""Putting the UI together: the hubs, the server, and how it waits (used by ``fluxpy ui`` and the tests)."""
from __future__ import annotations

import dataclasses
import threading
from typing import Callable

from controllers.runtime.kube import KubeClient
from flux_cli.web.hub import Hub, HubPool
from flux_cli.web.server import UIConfig, UIServer


@dataclasses.dataclass
class Running:
    """A started UI: its URL, and how to stop it."""

    server: UIServer
    stop_hubs: Callable[[], None]

    @property
    def url(self) -> str:
        return self.server.url

    def wait(self) -> None:
        """Serve until interrupted."""
        threading.Event().wait()

    def stop(self) -> None:
        self.server.stop()
        self.stop_hubs()


def _bind(hub_for, config: UIConfig) -> UIServer:
    """The server, bound before any watch starts (an address in use is one line, and costs no list)."""
    try:
        return UIServer(hub_for, config)
    except OSError as exc:
        raise ValueError(f"cannot listen on {config.address}:{config.port}: {exc.strerror or exc}"
                         " (pass another --port or --address)") from None


def workstation(kube: KubeClient, *, address: str = "127.0.0.1", port: int = 9080, namespaces: tuple = (),
                flux_namespace: str = "flux-system", state_dir: str | None = None, debounce: float = 0.05) -> Running:
    """The UI of one user, with their kubeconfig's client: one hub, the token and cookie."""
    who = kube.impersonated_user or kube.context_name or ""
    hub = Hub(kube, namespaces=namespaces, debounce=debounce, identity=who)
    server = _bind(lambda identity: hub, UIConfig(address=address, port=port, flux_namespace=flux_namespace,
                                                  state_dir=state_dir))
    hub.start()
    return Running(server.start(), hub.stop)


def in_cluster(*, address: str = "0.0.0.0", port: int = 9080, namespaces: tuple = (),
               flux_namespace: str = "flux-system", allow_actions: bool = False, tls_cert: str | None = None,
               tls_key: str | None = None, proxy_ca: str | None = None, proxy_names: tuple = (),
               proxy_secret_file: str | None = None, user_header: str = "X-Forwarded-User",
               groups_header: str = "X-Forwarded-Groups", kube: KubeClient | None = None) -> Running:
    """The in-cluster UI: every request acts for the user the trusted proxy names, through that user's hub,
    whose client impersonates them (never the UI's own service account, which may only impersonate).
    Refuses to start without a way to trust the proxy (TrustConfigError, shown as one line)."""
    from flux_cli.web.trust import ProxyTrust, TrustConfigError

    try:
        trust = ProxyTrust.from_options(ca_file=proxy_ca, allowed_names=proxy_names, secret_file=proxy_secret_file,
                                        user_header=user_header, groups_header=groups_header, cert_file=tls_cert,
                                        key_file=tls_key)
    except TrustConfigError as exc:
        raise ValueError(f"fluxpy ui --in-cluster: {exc}") from None
    base = kube or KubeClient.in_cluster()
    pool = HubPool(lambda identity: Hub(base.impersonate(identity.user, identity.groups), namespaces=namespaces,
                                        identity=identity.user).start(sync_timeout=5.0))
    server = _bind(pool.get, UIConfig(address=address, port=port, flux_namespace=flux_namespace,
                                      allow_actions=allow_actions, trust=trust))
    return Running(server.start(), pool.stop)
