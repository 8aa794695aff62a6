"""Turning command words into kinds and object names: ``get source git podinfo``, ``reconcile ks apps``.

Every generic verb takes the same variadic ``TARGET...`` argument: one or more words naming a kind (any name
from the kinds table: ``source git``, ``gitrepositories``, ``ks``, ``helmrelease``...), or ``all`` / ``<group>
all`` (``sources all``) where the verb allows it, followed by an optional object name.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from flux_cli.app import CLIError

if TYPE_CHECKING:
    from controllers.api.types import Kind

MAX_KIND_WORDS = 3


@dataclasses.dataclass(frozen=True)
class Target:
    kinds: tuple["Kind", ...]
    name: str | None
    #: True for ``all`` / ``sources all`` (several kinds).
    many: bool = False

    @property
    def kind(self) -> "Kind":
        return self.kinds[0]


def resolve(words: list[str], *, allow_all: bool = False, name: str = "optional") -> Target:
    """Resolve ``words`` into kinds and a name; ``name`` is "optional", "required" or "forbidden"."""
    from controllers.api.kinds import KINDS, UnknownKind, kind_by_name, kinds_in_group

    words = [w for w in words if w]
    if not words:
        raise CLIError(f"a kind is required, one of: {', '.join(k.display for k in KINDS)}")
    target = None
    if allow_all and words[0] == "all":
        target = Target(tuple(KINDS), None, many=True)
        rest = words[1:]
    elif allow_all and len(words) >= 2 and words[1] == "all" and kinds_in_group(words[0]):
        target = Target(tuple(kinds_in_group(words[0])), None, many=True)
        rest = words[2:]
    else:
        for n in range(min(MAX_KIND_WORDS, len(words)), 0, -1):
            try:
                kind = kind_by_name(" ".join(words[:n]))
            except UnknownKind:
                continue
            target, rest = Target((kind,), None), words[n:]
            break
        else:
            kind_by_name(" ".join(words[:2]) if len(words) > 1 else words[0])  # raises with suggestions
    if len(rest) > 1 or (rest and target.many):
        raise CLIError(f"unexpected arguments: {' '.join(rest if not target.many else rest)}")
    obj_name = rest[0] if rest else None
    if name == "required" and not obj_name:
        raise CLIError(f"{target.kind.display} name is required")
    if name == "forbidden" and obj_name:
        raise CLIError(f"unexpected argument {obj_name!r}")
    return dataclasses.replace(target, name=obj_name)


def split_kind_name(words: list[str], *, error_code: int = 1) -> tuple[str, str]:
    """``Kustomization/apps``, ``ks/apps`` or ``ks apps`` (any kind words) → (kind words, name)."""
    if len(words) == 1 and "/" in words[0]:
        kind, _, name = words[0].rpartition("/")
        if kind and name:
            return kind, name
    if len(words) >= 2:
        return " ".join(words[:-1]), words[-1]
    raise CLIError("expected <kind>/<name> or <kind> <name>, e.g. kustomization/apps", error_code)


def complete(ctx, args: list[str], incomplete: str) -> list[str]:
    """Shell completion for TARGET words: kind names first, then object names from the cluster."""
    from controllers.api.kinds import KINDS, UnknownKind, kind_by_name

    words = [a for a in (ctx.params.get("target") or [])]
    typed = " ".join(words)
    candidates: list[str] = []
    kind = None
    for n in range(min(MAX_KIND_WORDS, len(words)), 0, -1):
        try:
            kind = kind_by_name(" ".join(words[:n]))
            if n < len(words):
                return []  # kind and name already given
            break
        except UnknownKind:
            continue
    if kind is None:
        prefix = (typed + " ") if typed else ""
        for k in KINDS:
            for cli_name in k.cli_names[:2]:
                if cli_name.startswith(prefix) and cli_name != typed:
                    candidates.append(cli_name[len(prefix):].split(" ", 1)[0])
        return sorted({c for c in candidates if c.startswith(incomplete)})
    return [n for n in object_names(ctx, kind) if n.startswith(incomplete)]


def object_names(ctx, kind: "Kind") -> list[str]:
    """Names of the kind's objects in the selected namespace (empty when the cluster can't be reached)."""
    from flux_cli.app import App, default_namespace

    root = ctx.find_root()
    app = root.obj if isinstance(root.obj, App) else App(
        kubeconfig=root.params.get("kubeconfig"), context=root.params.get("context"),
        namespace=root.params.get("namespace") or default_namespace())
    try:
        items = app.kube.list(kind, app.namespace if kind.namespaced else None).get("items") or []
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    return sorted(i["metadata"]["name"] for i in items)
