"""The modules the web UI (``flux_cli/web``) shares with the CLI's commands load no CLI: importing them in a fresh
interpreter brings in no ``flux_cli``, ``typer`` or ``rich`` module (importing ``flux_cli.commands.*`` would
register Typer commands)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ("controllers.runtime.inspect", "controllers.runtime.chain", "controllers.runtime.protocol",
          "controllers.lib.tree", "controllers.lib.preview")


def test_the_shared_data_modules_load_no_cli():
    code = (f"import json, sys\nimport {', '.join(SHARED)}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('flux_cli', 'typer', 'rich'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert json.loads(out) == []
