"""The top-level verb groups that several command modules add sub-commands to (``build artifact`` and
``build kustomization``, ``diff artifact`` and ``diff kustomization``, ...). Defined once, here."""
from __future__ import annotations

import typer

from flux_cli.root import app

push_app = typer.Typer(help="Push artifacts to OCI registries.", no_args_is_help=True)
pull_app = typer.Typer(help="Pull artifacts from OCI registries.", no_args_is_help=True)
tag_app = typer.Typer(help="Tag artifacts in OCI registries.", no_args_is_help=True)
list_app = typer.Typer(help="List artifacts in OCI registries.", no_args_is_help=True)
build_app = typer.Typer(help="Build artifacts and Kustomizations locally, as the controllers would.",
                        no_args_is_help=True)
diff_app = typer.Typer(help="Compare local content with what is published or applied.", no_args_is_help=True)

for _name, _group in (("push", push_app), ("pull", pull_app), ("tag", tag_app), ("list", list_app),
                      ("build", build_app), ("diff", diff_app)):
    app.add_typer(_group, name=_name)
