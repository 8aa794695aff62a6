"""ImagePolicy tag selection, as Flux's image-reflector-controller selects (Flux 2.7):

- ``semver.range``: Masterminds/semver v3 constraints (:mod:`controllers.lib.semver`) (``>=1.2 <2``, ``^1.2``, ``~1.2.3``, ``1.2.x``,
  ``1.2 - 1.4``, ``||``); a tag counts only if it has three dot-separated parts and parses as a (coerced)
  version; prereleases match only a comparison group whose constraints name a prerelease; the latest is the
  highest matching version (its tag as written).
- ``alphabetical.order``: ``asc`` (default) picks the last tag in byte order, ``desc`` the first.
- ``numerical.order``: every tag must parse as a float (Go's ``ParseFloat``); ``asc`` picks the largest.
- ``filterTags``: ``pattern`` (Go RE2) keeps the tags it matches anywhere; ``extract`` (Go's
  ``Regexp.Expand`` template: ``$1``, ``${name}``, ``$$``) turns each into the value the policy orders,
  and the chosen value maps back to its original tag.

Errors are :class:`PolicyError` with Flux's messages (``improper constraint: …``, ``invalid order argument
provided: …``, ``failed to parse invalid numeric value '…'``, ``unable to determine latest version from
provided list``).
"""
from __future__ import annotations

import math
import re
from typing import Callable, Mapping

from controllers.lib import semver
from controllers.lib.goregex import InvalidExpression, compile_go, go_expand



class PolicyError(ValueError):
    """The policy cannot be built, or cannot choose a tag (the message is Flux's)."""


# ---------------------------------------------------------------------------------------------- policies

def _order(value: str) -> str:
    order = (value or "").upper() or "ASC"
    if order not in ("ASC", "DESC"):
        raise PolicyError(f"invalid order argument provided: '{order}', must be one of: ASC, DESC")
    return order


class Policy:
    """One ImagePolicy's ``spec.policy`` (+ ``filterTags``): :meth:`latest` picks from a list of tags."""

    def __init__(self, policy: Mapping, filter_tags: Mapping | None = None):
        self._choose = self._chooser(policy or {})
        filter_tags = filter_tags or {}
        self.pattern, self.extract = filter_tags.get("pattern") or "", filter_tags.get("extract") or ""
        self._regex = None
        if self.pattern:
            try:
                self._regex = compile_go(self.pattern)
            except InvalidExpression as exc:
                raise PolicyError(f"invalid regular expression pattern '{self.pattern}': {exc}") from None

    @staticmethod
    def _chooser(policy: Mapping) -> Callable[[list[str]], str]:
        if policy.get("semver") is not None:
            try:
                constraint = semver.new_constraint((policy["semver"] or {}).get("range") or "")
            except semver.InvalidConstraint as exc:
                raise PolicyError(str(exc)) from None

            def latest_version(tags: list[str]) -> str:
                best: tuple[semver.Version, str] | None = None
                for tag in tags:
                    try:
                        version = semver.parse_version(tag)
                    except semver.InvalidVersion:
                        continue
                    if constraint.check(version) and (best is None or version > best[0]):
                        best = (version, tag)
                if best is None:
                    raise PolicyError("unable to determine latest version from provided list")
                return best[1]

            return latest_version
        if policy.get("alphabetical") is not None:
            order = _order((policy["alphabetical"] or {}).get("order", ""))
            return lambda tags: (min if order == "DESC" else max)(tags, key=lambda t: t.encode())
        if policy.get("numerical") is not None:
            order = _order((policy["numerical"] or {}).get("order", ""))

            def numerical(tags: list[str]) -> str:
                latest, best = "", 0.0
                for i, tag in enumerate(tags):
                    value = go_parse_float(tag)
                    if value is None:
                        raise PolicyError(f"failed to parse invalid numeric value '{tag}'")
                    if i == 0 or (value >= best if order == "ASC" else value <= best):
                        latest, best = tag, value
                return latest

            return numerical
        raise PolicyError("given ImagePolicyChoice object is invalid")

    def filter(self, tags: list[str]) -> dict[str, str]:
        """The tags ``filterTags`` keeps, as {value to order: original tag} (all of them without a pattern)."""
        if self._regex is None:
            return {t: t for t in tags}
        kept: dict[str, str] = {}
        for tag in tags:
            match = self._regex.search(tag)
            if match is not None:
                kept[go_expand(self.extract, match) if self.extract else tag] = tag
        return kept

    def latest(self, tags: list[str]) -> str:
        """The chosen tag (as the registry lists it); the tags are considered in the order given (the
        database keeps them newest first, so a numerical policy names the first non-numeric tag as Flux)."""
        kept = self.filter(list(tags))
        if not kept:
            raise PolicyError("version list argument cannot be empty")
        return kept[self._choose(list(kept))]


def go_parse_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(s, 64)`` acceptance: decimal/hex floats, ``inf``/``nan``, underscores only
    between digits with a base prefix (not supported here: refused), no surrounding spaces."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        if re.match(r"^[+-]?0[xX]", text):
            return float.fromhex(text)
        value = float(text)
    except ValueError:
        return None
    lowered = text.lower().lstrip("+-")
    if math.isinf(value) and lowered not in ("inf", "infinity") or math.isnan(value) and lowered != "nan":
        return None
    return value
