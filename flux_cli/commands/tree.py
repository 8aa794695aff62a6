"""``fluxpy tree kustomization NAME``: the objects a Kustomization manages, as ``flux tree ks``.

The tree is read from ``status.inventory``: a Kustomization in it is expanded with its own inventory (unless
the parent applies to a remote cluster), a HelmRelease with the objects of its latest Helm release (read from
the Helm storage Secret, plus the CRDs it installed). ``--compact`` keeps only Flux objects
(``*.toolkit.fluxcd.io``). ``-o json|yaml`` prints flux's structure (``resource`` with ``Namespace``,
``Name``, ``GroupKind``; ``resources`` for the children).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

if TYPE_CHECKING:
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeClient

tree_app = typer.Typer(help="Print the resources reconciled by Flux objects.", no_args_is_help=True)
app.add_typer(tree_app, name="tree")

COMPACT_GROUP = "toolkit.fluxcd.io"
_GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclasses.dataclass
class Node:
    """One object of the tree and the objects it manages."""

    ref: "ObjectRef"
    children: list["Node"] = dataclasses.field(default_factory=list)

    def add(self, ref: "ObjectRef") -> "Node":
        node = Node(ref)
        self.children.append(node)
        return node

    def to_dict(self) -> dict:
        """flux's JSON shape (cli-utils ObjMetadata field names)."""
        out: dict = {"resource": {"Namespace": self.ref.namespace, "Name": self.ref.name,
                                  "GroupKind": {"Group": self.ref.group, "Kind": self.ref.kind}}}
        if self.children:
            out["resources"] = [c.to_dict() for c in self.children]
        return out


def kustomization_tree(kube: "KubeClient", kustomization: dict, *, compact: bool = False) -> Node:
    """The tree of a Kustomization (see the module docstring)."""
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.runtime.apply import ObjectRef

    meta = kustomization["metadata"]
    root = Node(ObjectRef(KUSTOMIZATION.group, KUSTOMIZATION.kind, meta["namespace"], meta["name"],
                          KUSTOMIZATION.version))
    _expand(kube, root, kustomization, compact, {root.ref})
    return root


def _keep(ref: "ObjectRef", compact: bool) -> bool:
    return not compact or COMPACT_GROUP in ref.group


def _expand(kube: "KubeClient", node: Node, kustomization: dict, compact: bool, path: set) -> None:
    from controllers.api.helm import HELM_RELEASE
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.api.objects import dig
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeError

    for entry in dig(kustomization, "status.inventory.entries", []) or []:
        try:
            ref = ObjectRef.from_id(entry["id"], entry.get("v", ""))
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        if not _keep(ref, compact) or ref == node.ref:
            continue
        child = node.add(ref)
        if (ref.group, ref.kind) == (HELM_RELEASE.group, HELM_RELEASE.kind):
            for obj_ref in helm_release_objects(kube, ref.namespace, ref.name):
                if _keep(obj_ref, compact):
                    child.add(obj_ref)
        elif (ref.group, ref.kind) == (KUSTOMIZATION.group, KUSTOMIZATION.kind) \
                and not dig(kustomization, "spec.kubeConfig") and ref not in path:
            try:
                nested = kube.get(KUSTOMIZATION, ref.name, ref.namespace)
            except KubeError as exc:
                raise CLIError(f"failed to find object: {exc.message}") from None
            _expand(kube, child, nested, compact, path | {ref})


def helm_release_objects(kube: "KubeClient", namespace: str, name: str) -> list["ObjectRef"]:
    """The objects of a HelmRelease's latest release, from the Helm storage Secret (empty when there is none)."""
    import base64
    import gzip
    import json

    import yaml

    from controllers.api.builtin import CRD, SECRET
    from controllers.api.helm import HELM_RELEASE
    from controllers.api.objects import dig
    from controllers.runtime.apply import ObjectRef
    from controllers.runtime.kube import KubeError, NotFound

    release = kube.get(HELM_RELEASE, name, namespace)
    if dig(release, "spec.kubeConfig"):
        return []
    storage_ns = dig(release, "status.storageNamespace")
    latest = (dig(release, "status.history") or [None])[0]
    if not storage_ns or not latest:
        return []
    where = f"{namespace}/{name}"
    try:
        secret = kube.get(SECRET, f"sh.helm.release.v1.{latest.get('name')}.v{latest.get('version')}", storage_ns)
    except NotFound:
        return []
    except KubeError as exc:
        raise CLIError(f"failed to find the Helm storage object for HelmRelease '{where}': {exc.message}") from None
    data = (secret.get("data") or {}).get("release")
    if not data:
        raise CLIError(f"failed to decode the Helm storage object for HelmRelease '{where}'")
    try:
        raw = base64.b64decode(base64.b64decode(data))
        if raw[:3] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
        manifest = json.loads(raw).get("manifest") or ""
        documents = [d for d in yaml.safe_load_all(manifest) if isinstance(d, dict)]
    except (ValueError, OSError, yaml.YAMLError) as exc:
        raise CLIError(f"failed to decode the Helm storage object for HelmRelease '{where}': {exc}") from None
    refs = []
    for obj in documents:
        if not (obj.get("apiVersion") and obj.get("kind") and dig(obj, "metadata.name")):
            continue
        try:
            namespaced = kube.resource_for(obj["apiVersion"], obj["kind"]).namespaced
        except KubeError:
            namespaced = True
        if namespaced and not dig(obj, "metadata.namespace"):
            obj["metadata"]["namespace"] = latest.get("namespace") or namespace
        refs.append(ObjectRef.from_object(obj, namespaced=namespaced))
    crd_policies = {dig(release, "spec.install.crds"), dig(release, "spec.upgrade.crds")} - {None, "", "Skip"}
    if crd_policies:
        selector = f"{HELM_RELEASE.group}/name={name},{HELM_RELEASE.group}/namespace={namespace}"
        try:
            crds = kube.list(CRD, label_selector=selector).get("items") or []
        except KubeError:
            crds = []
        known = {r.name for r in refs if r.kind == "CustomResourceDefinition"}
        refs += [ObjectRef(CRD.group, CRD.kind, "", c["metadata"]["name"], CRD.version)
                 for c in crds if c["metadata"]["name"] not in known]
    return refs


def _tree_kustomization(
    ctx: typer.Context,
    name: str = typer.Argument(None, metavar="NAME", help="The Kustomization's name."),
    compact: bool = typer.Option(False, "--compact", help="List Flux resources only."),
    output: str = typer.Option("", "-o", "--output",
                               help="The format in which the tree should be printed: 'json' or 'yaml'."),
) -> None:
    """Print the resource inventory of a Kustomization, nested Kustomizations expanded."""
    import yaml

    from controllers.api.kustomize import KUSTOMIZATION

    a: App = ctx.obj
    if not name:
        raise CLIError("kustomization name is required")
    if output not in ("", "json", "yaml"):
        raise CLIError(f"unsupported output format '{output}': can be 'json' or 'yaml'")
    root = kustomization_tree(a.kube, a.kube.get(KUSTOMIZATION, name, a.namespace), compact=compact)
    if output == "json":
        a.terminal.json(root.to_dict())
    elif output == "yaml":
        a.terminal.line(yaml.safe_dump(root.to_dict(), sort_keys=True, default_flow_style=False).rstrip("\n"))
    else:
        a.terminal.tree(root, lambda n: n.ref.subject, lambda n: n.children)


tree_kustomization = tree_app.command("kustomization")(handle_errors(_tree_kustomization))
tree_app.command("ks", hidden=True)(handle_errors(_tree_kustomization))
