"""Process flag values, parsed one way for every component (as Go's ``strconv.ParseBool`` and pflag do).

In the runtime, not in ``controllers.lib``, because the runtime's own settings and every component's entry
point parse flags, and the runtime may not import the library.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Iterable, Mapping

from controllers.api.duration import parse_duration

_TRUE = ("1", "t", "true", "yes", "y")
_FALSE = ("0", "f", "false", "no", "n")


def parse_bool(value: str | bool) -> bool:
    """``--flag=true``/``false`` (and Go's other spellings); an argparse error names the bad value."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")


def parse_duration_flag(value: str) -> float:
    """A Go duration flag (``30s``, ``1m30s``) in seconds; an argparse error names the bad value."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class FeatureGates:
    """A component's feature gates with their defaults; :meth:`parse` reads ``--feature-gates=A=true,B=false``
    over the defaults (an unknown gate or a value other than true/false is an argparse error)."""

    def __init__(self, defaults: Mapping[str, bool]):
        self.defaults = dict(defaults)

    def parse(self, value: str) -> dict[str, bool]:
        gates = dict(self.defaults)
        for item in filter(None, (part.strip() for part in (value or "").split(","))):
            name, sep, flag = item.partition("=")
            if name not in self.defaults:
                raise argparse.ArgumentTypeError(f"unknown feature gate '{name}': known gates are "
                                                 f"{', '.join(sorted(self.defaults))}")
            if not sep or flag.strip().lower() not in ("true", "false"):
                raise argparse.ArgumentTypeError(f"invalid value of feature gate '{name}': expected true or false")
            gates[name] = flag.strip().lower() == "true"
        return gates


@dataclasses.dataclass(frozen=True)
class OptionFlag:
    """A command-line flag that sets one field of a component's options dataclass."""

    field: str
    flag: str
    help: str
    #: how the value is read; default: from the field's default (bool, int, str; a tuple is a repeated flag).
    parse: Callable[[str], Any] | None = None


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"option field {field.name} has no default")


def add_option_flags(parser: argparse.ArgumentParser, options_cls: type, flags: Iterable[OptionFlag]) -> None:
    """One argparse flag per :class:`OptionFlag`, its default the options field's (stated once, there)."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    for option in flags:
        default = _default(fields[option.field])
        kwargs: dict[str, Any] = {"dest": option.field, "help": option.help}
        if option.parse is not None:
            kwargs.update(type=option.parse, default=default)
        elif isinstance(default, bool):
            kwargs.update(type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL")
        elif isinstance(default, tuple):
            kwargs.update(action="append", default=[])
        else:
            kwargs.update(type=type(default), default=default)
        parser.add_argument(option.flag, **kwargs)


def options_from_args(options_cls: type, args: argparse.Namespace, flags: Iterable[OptionFlag], **fixed: Any):
    """The options dataclass from parsed flags (a flag absent from ``args`` keeps the field's default), with
    ``fixed`` fields that do not come from flags (e.g. read from the environment)."""
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    values = dict(fixed)
    for option in flags:
        if hasattr(args, option.field):
            value = getattr(args, option.field)
            values[option.field] = tuple(value or ()) if isinstance(_default(fields[option.field]), tuple) else value
    return options_cls(**values)


#: Flags several of Flux's controllers share (fluxcd/pkg/runtime's acl options, the artifact fetcher's retries),
#: for an options dataclass with these fields.
NO_CROSS_NAMESPACE_REFS = OptionFlag("no_cross_namespace_refs", "--no-cross-namespace-refs", "When set to true, "
                                     "references between custom resources are allowed only if the reference and "
                                     "the referee are in the same namespace.")
HTTP_RETRY = OptionFlag("http_retry", "--http-retry", "The maximum number of retries when failing to fetch "
                        "artifacts over HTTP.")

DEFAULT_SERVICE_ACCOUNT = OptionFlag("default_service_account", "--default-service-account",
                                     "Default service account used for impersonation.")
OVERRIDE_MANAGER = OptionFlag("disallowed_field_managers", "--override-manager", "Field manager disallowed to "
                              "perform changes on managed resources.")
INSECURE_KUBECONFIG_EXEC = OptionFlag("insecure_kubeconfig_exec", "--insecure-kubeconfig-exec", "Allow use of the "
                                      "user.exec section in kubeconfigs provided for remote apply.")
INSECURE_KUBECONFIG_TLS = OptionFlag("insecure_kubeconfig_tls", "--insecure-kubeconfig-tls", "Allow that kubeconfigs "
                                     "provided for remote apply can disable TLS verification.")


def feature_gates_flag(gates: FeatureGates) -> OptionFlag:
    """``--feature-gates`` over a controller's own gates."""
    return OptionFlag("feature_gates", "--feature-gates", "A comma separated list of key=value pairs defining the "
                      "state of experimental features.", parse=gates.parse)
