"""One flag parser for every component: Go's bool spellings and durations, a clear error for a bad value."""
import argparse
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


def test_option_flags_take_their_defaults_from_the_options_dataclass():
    import dataclasses

    from controllers.runtime.flags import FeatureGates, OptionFlag, add_option_flags, options_from_args

    gates = FeatureGates({"A": False, "B": True})

    @dataclasses.dataclass
    class Options:
        retries: int = 9
        strict: bool = False
        name: str = "x"
        managers: tuple[str, ...] = ()
        gates: dict = dataclasses.field(default_factory=lambda: dict(gates.defaults))
        not_a_flag: str = "env"

    flags = (OptionFlag("retries", "--retries", "r"), OptionFlag("strict", "--strict", "s"),
             OptionFlag("name", "--name", "n"), OptionFlag("managers", "--manager", "m"),
             OptionFlag("gates", "--feature-gates", "g", parse=gates.parse))
    parser = argparse.ArgumentParser()
    add_option_flags(parser, Options, flags)
    assert options_from_args(Options, parser.parse_args([]), flags) == Options()
    parsed = options_from_args(Options, parser.parse_args(
        ["--retries", "3", "--strict=false", "--strict", "--name", "y", "--manager", "a", "--manager", "b",
         "--feature-gates", "A=true"]), flags, not_a_flag="fixed")
    assert parsed == Options(3, True, "y", ("a", "b"), {"A": True, "B": True}, "fixed")
    with pytest.raises(SystemExit):
        parser.parse_args(["--feature-gates", "C=true"])
    with pytest.raises(argparse.ArgumentTypeError, match="known gates are A, B"):
        gates.parse("C=true")


def test_source_watcher_flags():
    from controllers.source.generator import DEFAULT_RETRIES, add_arguments, new_reconciler

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--no-cross-namespace-refs=true", "--http-retry", "2", "--storage-path", "/tmp/x"])
    assert new_reconciler(args).options.no_cross_namespace_refs and new_reconciler(args).options.http_retry == 2
    defaults = new_reconciler(parser.parse_args(["--storage-path", "/tmp/y"])).options
    assert not defaults.no_cross_namespace_refs and defaults.http_retry == DEFAULT_RETRIES
