"""Golden files: expected output kept in the repository, compared byte for byte, regenerated on purpose only.

``make golden`` (``FLUXPY_UPDATE_GOLDEN=1``) rewrites them; the diff is then reviewed like code.
"""
from __future__ import annotations

import os
from pathlib import Path

UPDATE = os.environ.get("FLUXPY_UPDATE_GOLDEN") == "1"


def assert_golden(path: Path, text: str) -> None:
    """``text`` equals the golden file ``path`` (written instead, when regenerating)."""
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run 'make golden' and review the new file"
    assert text == path.read_text(), f"the output no longer matches {path}; if intended, run 'make golden' " \
                                     "and review the diff"
