"""``fluxpy ui``: a live web view of the delivery graph, served from this process.

On a workstation it reads the cluster with the user's own kubeconfig (``--kubeconfig``, ``--context``), so the
user's RBAC is what it shows and what its actions may do; the printed URL carries the session's token. In a
cluster (``--in-cluster``, the ``ui`` component of ``fluxpy install --components-extra=ui``) it acts for the
user a trusted proxy names (see :mod:`flux_cli.web.trust`), read-only unless ``--allow-actions``.
The server is :mod:`flux_cli.web.server`; nothing of it is imported before this command runs.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app


@app.command("ui")
@handle_errors
def ui(
    ctx: typer.Context,
    port: int = typer.Option(9080, "--port", help="The port to listen on (0: any free port)."),
    address: str = typer.Option("127.0.0.1", "--address", help="The address to listen on."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default web browser."),
    namespaces: str = typer.Option("", "--namespaces", help="Only these namespaces, comma-separated (for a user "
                                   "who may not list every namespace); default: all."),
    flux_namespace: str = typer.Option("flux-system", "--flux-namespace", help="Where the controllers run."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", hidden=True, help="fluxpy dev's state directory."),
    in_cluster: bool = typer.Option(False, "--in-cluster", help="Run as the in-cluster component: act for the "
                                    "user named by a trusted proxy (see --proxy-ca / --proxy-secret-file)."),
    allow_actions: bool = typer.Option(False, "--allow-actions", help="In a cluster: allow reconcile, suspend "
                                       "and resume (the default is read-only)."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="In a cluster: the server's certificate."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="In a cluster: the server's key."),
    proxy_ca: Optional[str] = typer.Option(None, "--proxy-ca", help="In a cluster: the CA that signs the proxy's "
                                           "client certificate (mTLS)."),
    proxy_names: str = typer.Option("", "--proxy-names", help="In a cluster: the client certificate names "
                                    "accepted, comma-separated (default: any the CA signed)."),
    proxy_secret_file: Optional[str] = typer.Option(None, "--proxy-secret-file", help="In a cluster, instead of "
                                                    "mTLS: a file holding the secret the proxy sends."),
    user_header: str = typer.Option("X-Forwarded-User", "--user-header", help="In a cluster: the proxy's user header."),
    groups_header: str = typer.Option("X-Forwarded-Groups", "--groups-header",
                                      help="In a cluster: the proxy's groups header."),
) -> None:
    """Serve a live web view of sources, Kustomizations, HelmReleases and what they applied."""
    from flux_cli.web import launch

    a: App = ctx.obj
    wanted = tuple(n.strip() for n in namespaces.split(",") if n.strip())
    if in_cluster:
        server = launch.in_cluster(address=address, port=port, namespaces=wanted, flux_namespace=flux_namespace,
                                   allow_actions=allow_actions, tls_cert=tls_cert, tls_key=tls_key,
                                   proxy_ca=proxy_ca, proxy_names=tuple(n for n in proxy_names.split(",") if n),
                                   proxy_secret_file=proxy_secret_file, user_header=user_header,
                                   groups_header=groups_header)
    else:
        if allow_actions or proxy_ca or proxy_secret_file:
            raise CLIError("--allow-actions, --proxy-ca and --proxy-secret-file apply with --in-cluster only")
        a.terminal.action("starting the watches")
        server = launch.workstation(a.kube, address=address, port=port, namespaces=wanted,
                                    flux_namespace=flux_namespace, state_dir=state_dir)
    a.terminal.success(f"serving fluxpy ui at {server.url}")
    a.terminal.line(server.url)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
