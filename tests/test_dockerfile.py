"""The controller image's Dockerfile: its Go tools stay at the versions controllers.localcluster.tools pins."""
from __future__ import annotations

import re
from pathlib import Path

from controllers.localcluster.tools import TOOLS

DOCKERFILE = (Path(__file__).parents[1] / "Dockerfile").read_text()
GO_INSTALLS = dict(re.findall(r"go install (\S+)@(\S+)", DOCKERFILE))


def test_every_go_tool_is_installed_at_its_pinned_version():
    pinned = {tool.package: tool.version for tool in TOOLS.values() if tool.package and tool.in_image}
    assert GO_INSTALLS == pinned


def test_runtime_stage():
    runtime = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert runtime.startswith("python:3.11-slim")
    assert "git" in runtime and "openssh-client" in runtime
    assert "COPY --from=tools /out/ /usr/local/bin/" in runtime
    assert "\nUSER 65534:65534\n" in runtime
    assert runtime.rstrip().endswith('ENTRYPOINT ["python", "-m", "controllers"]')
