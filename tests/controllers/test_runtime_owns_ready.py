"""No controller writes Ready (or Reconciling/Stalled) itself: the runtime's outcome function computes them
from the declared conditions. Scans the source of every controller package (all but ``runtime`` and ``api``)."""
from __future__ import annotations

import ast
from pathlib import Path

CONTROLLERS = Path(__file__).resolve().parents[2] / "controllers"
EXEMPT = {"runtime", "api", "localcluster"}
RUNTIME_TYPES = {"READY", "RECONCILING", "STALLED", "Ready", "Reconciling", "Stalled"}
SETTERS = {"mark_true", "mark_false", "mark_unknown", "set_condition"}
RUNTIME_SETTERS = {"mark_reconciling", "mark_stalled", "mark_progressing"}


def _names_runtime_type(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in RUNTIME_TYPES
    if isinstance(node, ast.Attribute):
        return node.attr in RUNTIME_TYPES
    if isinstance(node, ast.Name):
        return node.id in RUNTIME_TYPES
    return False


def runtime_condition_writes(source: str) -> list[int]:
    """Line numbers where ``source`` writes Ready/Reconciling/Stalled: a condition setter given that type, a
    runtime-only setter, a hand-built condition dict of that type, or an assignment of a conditions list."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            type_arg = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg in ("type_", "type")), None)
            if func in RUNTIME_SETTERS or (func in SETTERS and _names_runtime_type(type_arg)):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "type" and _names_runtime_type(value):
                    lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
                        and target.slice.value == "conditions"):
                    lines.append(node.lineno)
    return sorted(set(lines))


def test_the_scan_finds_each_kind_of_write():
    snippet = '''
cond.mark_true(obj, cond.READY, "Succeeded", "ok")
cond.mark_unknown(obj, "Ready", "Progressing", "")
cond.set_condition(obj, type_=meta.READY, status="True", reason="x")
cond.mark_reconciling(obj, "Progressing", "working")
ready = {"type": cond.READY, "status": "True"}
status["conditions"] = [c for c in status["conditions"] if c["type"] == "Ready"]
cond.mark_true(obj, FETCH_FAILED, "x", "y")
cond.delete(obj, ARTIFACT_OUTDATED)
ctx.event("Normal", cond.READY, "message")
'''
    assert runtime_condition_writes(snippet) == [2, 3, 4, 5, 6, 7]


def test_no_controller_writes_ready_reconciling_or_stalled():
    packages = [p for p in CONTROLLERS.iterdir() if p.is_dir() and p.name not in EXEMPT and not p.name.startswith("_")]
    assert {"source", "kustomize"} <= {p.name for p in packages}
    found = [f"{path.relative_to(CONTROLLERS.parent)}:{line}"
             for package in packages for path in sorted(package.rglob("*.py"))
             for line in runtime_condition_writes(path.read_text())]
    assert not found, ("the runtime computes Ready/Reconciling/Stalled (declare Reconciler.conditions, use "
                       f"ctx.progress, return or raise outcomes); written directly at: {', '.join(found)}")
