"""Helpers of the bootstrap tests (imported as ``tests.bootstrap.support``)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from servers.git import git

#: the components the end-to-end installations run (the two a bootstrapped cluster needs).
E2E_COMPONENTS = ("source-controller", "kustomize-controller")


def controller_logs(logs: Path, lines: int = 40) -> str:
    """The tails of the controllers' logs, for assertion messages."""
    out = []
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(out)


def push_change(url: str, files: dict[str, str], message: str, *, env: dict | None = None,
                branch: str = "main") -> str:
    """Clone ``url``, change ``files``, commit and push (as a person would); return the new head."""
    with tempfile.TemporaryDirectory() as tmp:
        git("clone", "-q", "-b", branch, url, f"{tmp}/w", env=env)
        for rel, content in files.items():
            path = Path(tmp, "w", rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        git("add", "-A", cwd=f"{tmp}/w", env=env)
        git("commit", "-q", "-m", message, cwd=f"{tmp}/w", env=env)
        git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=f"{tmp}/w", env=env)
        return git("rev-parse", "HEAD", cwd=f"{tmp}/w", env=env).strip()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def ssh_env(key: Path, known_hosts: Path) -> dict[str, str]:
    """git's environment for SSH with a given key and known_hosts."""
    command = (f"ssh -F /dev/null -i {key} -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts} "
               "-o StrictHostKeyChecking=yes -o BatchMode=yes")
    return {"GIT_SSH_COMMAND": command}



class Result:
    """What a fluxpy run printed and returned."""

    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def __repr__(self) -> str:
        return f"exit {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
