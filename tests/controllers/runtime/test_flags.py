"""One flag parser for every component: Go's bool spellings and durations, a clear error for a bad value."""
import subprocess
import sys

import pytest

from controllers.runtime.flags import parse_bool, parse_duration_flag


@pytest.mark.parametrize(("text", "value"), [("true", True), ("T", True), ("1", True), ("yes", True),
                                             ("false", False), ("F", False), ("0", False), (" no ", False)])
def test_bool_spellings(text, value):
    assert parse_bool(text) is value


def test_duration_in_seconds():
    assert parse_duration_flag("1m30s") == 90.0


@pytest.mark.parametrize("flag", ["--enable-leader-election=maybe", "--requeue-dependency=soon"])
def test_a_bad_flag_value_is_one_line_not_a_traceback(flag):
    result = subprocess.run([sys.executable, "-m", "controllers", "kustomize-controller", flag],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert flag.split("=")[1] in result.stderr
