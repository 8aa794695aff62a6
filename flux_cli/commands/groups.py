"""The top-level verb groups that several command modules add sub-commands to (``build artifact`` and
``build kustomization``, ``diff artifact`` and ``diff kustomization``, ...). Defined once, here."""
from __future__ import annotations

import typer

from flux_cli.root import app, command_group

push_app = command_group("Push artifacts to OCI registries.")
pull_app = command_group("Pull artifacts from OCI registries.")
tag_app = command_group("Tag artifacts in OCI registries.")
list_app = command_group("List artifacts in OCI registries.")
build_app = command_group("Build artifacts and Kustomizations locally, as the controllers would.")
diff_app = command_group("Compare local content with what is published or applied.")

for _name, _group in (("push", push_app), ("pull", pull_app), ("tag", tag_app), ("list", list_app),
                      ("build", build_app), ("diff", diff_app)):
    app.add_typer(_group, name=_name)
