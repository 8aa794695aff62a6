"""``fluxpy tree kustomization NAME``: the objects a Kustomization manages, as ``flux tree ks``; ``fluxpy tree
helmrelease NAME``: the objects of a HelmRelease's current release.

The tree is read from ``status.inventory``: a Kustomization in it is expanded with its own inventory (unless
the parent applies to a remote cluster), a HelmRelease with the objects of its latest Helm release (read from
the Helm storage Secret, plus the CRDs it installed). ``--compact`` keeps only Flux objects
(``*.toolkit.fluxcd.io``). ``-o json|yaml`` prints flux's structure (``resource`` with ``Namespace``,
``Name``, ``GroupKind``; ``resources`` for the children). The tree itself is :mod:`controllers.lib.tree`'s.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app, command_group

if TYPE_CHECKING:
    from controllers.lib.tree import Node

tree_app = command_group("Print the resources reconciled by Flux objects.")
app.add_typer(tree_app, name="tree")


def _print_tree(a: App, root: "Node", output: str) -> None:
    import yaml

    if output == "json":
        a.terminal.json(root.to_dict())
    elif output == "yaml":
        a.terminal.line(yaml.safe_dump(root.to_dict(), sort_keys=True, default_flow_style=False).rstrip("\n"))
    else:
        a.terminal.tree(root, lambda n: n.ref.subject, lambda n: n.children)


OUTPUT = typer.Option("", "-o", "--output", help="The format in which the tree should be printed: 'json' or 'yaml'.")


def _check_output(output: str) -> None:
    if output not in ("", "json", "yaml"):
        raise CLIError(f"unsupported output format '{output}': can be 'json' or 'yaml'")


def _tree_kustomization(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="NAME", help="The Kustomization's name."),
    compact: bool = typer.Option(False, "--compact", help="List Flux resources only."),
    output: str = OUTPUT,
) -> None:
    """Print the resource inventory of a Kustomization, nested Kustomizations expanded."""
    from controllers.api.kustomize import KUSTOMIZATION

    from controllers.lib.tree import TreeError, kustomization_tree

    a: App = ctx.obj
    if not name:
        raise CLIError("kustomization name is required")
    _check_output(output)
    kustomization = a.kube.get(KUSTOMIZATION, name, a.namespace)
    try:
        root = kustomization_tree(a.kube, kustomization, compact=compact)
    except TreeError as exc:
        raise CLIError(str(exc)) from None
    _print_tree(a, root, output)


def _tree_helmrelease(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="NAME", help="The HelmRelease's name."),
    output: str = OUTPUT,
) -> None:
    """Print the objects of a HelmRelease's current release (from Helm's storage)."""
    from controllers.api.helm import HELM_RELEASE
    from controllers.lib.tree import Node, TreeError, helm_release_objects
    from controllers.runtime.apply import ObjectRef

    a: App = ctx.obj
    if not name:
        raise CLIError("helmrelease name is required")
    _check_output(output)
    root = Node(ObjectRef(HELM_RELEASE.group, HELM_RELEASE.kind, a.namespace, name, HELM_RELEASE.version))
    try:
        refs = helm_release_objects(a.kube, a.namespace, name)
    except TreeError as exc:
        raise CLIError(str(exc)) from None
    for ref in refs:
        root.add(ref)
    _print_tree(a, root, output)


tree_kustomization = tree_app.command("kustomization")(handle_errors(_tree_kustomization))
tree_app.command("ks", hidden=True)(handle_errors(_tree_kustomization))
tree_helmrelease = tree_app.command("helmrelease")(handle_errors(_tree_helmrelease))
tree_app.command("hr", hidden=True)(handle_errors(_tree_helmrelease))
