"""Flag values shared by several commands.

A flag whose value names an API enum (a provider, a strategy, a repository type) is an :class:`EnumValue`
built from that enum in :mod:`controllers.api.enums`, so its help text, its shell completion and its
validation (with flux's message) come from the one declaration.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import typer

from controllers.api import enums
from flux_cli.app import CLIError


def split_list(values: Optional[list[str]]) -> list[str]:
    """Accept both repeated flags and comma-separated lists, as flux does (``--components a,b``)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def selected_components(components: Optional[list[str]], components_extra: Optional[list[str]], *,
                        addons: bool = False) -> list[str]:
    """``--components`` (default: the default components) plus ``--components-extra``, validated.

    With ``addons``, the add-ons that are not controllers (``ui``, manifestgen.options.ADDONS) are accepted
    too (``check``); without, they are refused with a hint (``dev up`` runs controllers only).
    """
    from controllers.api.kinds import ALL_COMPONENTS, COMPONENTS
    from manifestgen.options import ADDONS

    names = split_list(components) or list(COMPONENTS)
    names += [n for n in split_list(components_extra) if n not in names]
    known = [*ALL_COMPONENTS, *ADDONS] if addons else list(ALL_COMPONENTS)
    unknown = [n for n in names if n not in known]
    if unknown:
        hint = ""
        if not addons and any(n in ADDONS for n in unknown):
            hint = " (ui is not a controller: run 'fluxpy ui' locally, or install it with --components-extra=ui)"
        raise CLIError(f"unknown component(s) {', '.join(unknown)}: expected some of {', '.join(known)}{hint}")
    return names


def canonical_kind(kind: str, kinds: tuple[str, ...]) -> str | None:
    """The kind of ``kinds`` that ``kind`` names, case-insensitively (as flux's flags match kinds), or None."""
    return next((k for k in kinds if k.lower() == kind.lower()), None)


@dataclasses.dataclass(frozen=True)
class EnumValue:
    """The values a flag accepts (an API enum) and what a value is called in flux's error message."""

    #: e.g. "source OCI provider": the error says "source OCI provider 'ibm' is not supported, …".
    what: str
    values: tuple[str, ...]

    @property
    def listing(self) -> str:
        return ", ".join(self.values)

    def check(self, value: str, flag: str, *, code: int = 1) -> str:
        """``value`` if the enum has it; else a CLIError as pflag prints a rejected flag value."""
        if value not in self.values:
            raise CLIError(f"invalid argument \"{value}\" for \"{flag}\" flag: {self.what} '{value}' is not "
                           f"supported, must be one of: {self.listing}", code=code)
        return value

    def complete(self, incomplete: str) -> list[str]:
        return [v for v in self.values if v.startswith(incomplete)]

    def option(self, default: str, flag: str, help: str):
        """A ``typer.Option`` for this value: ``help`` followed by the values, completing them."""
        return typer.Option(default, flag, help=f"{help} One of: {self.listing}.", autocompletion=self.complete)


GIT_PROVIDER = EnumValue("source Git provider", enums.GIT_PROVIDERS)
OCI_PROVIDER = EnumValue("source OCI provider", enums.OCI_PROVIDERS)
BUCKET_PROVIDER = EnumValue("source bucket provider", enums.BUCKET_PROVIDERS)
VERIFY_PROVIDER = EnumValue("source OCI verify provider", enums.VERIFY_PROVIDERS)
DECRYPTION_PROVIDER = EnumValue("decryption provider", enums.DECRYPTION_PROVIDERS)
CHART_RECONCILE_STRATEGY = EnumValue("reconcile strategy", enums.CHART_RECONCILE_STRATEGIES)
CRDS_POLICY = EnumValue("upgrade CRDs policy", enums.CRDS_POLICIES)
