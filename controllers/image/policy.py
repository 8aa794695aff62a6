"""ImagePolicy tag selection, as Flux's image-reflector-controller selects (Flux 2.7):

- ``semver.range``: Masterminds/semver v3 constraints (``>=1.2 <2``, ``^1.2``, ``~1.2.3``, ``1.2.x``,
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

import dataclasses
import math
import re
from typing import Callable, Mapping

from controllers.lib.goregex import InvalidExpression, compile_go, go_expand

_NUM = re.compile(r"^[0-9]+$")
_ALLOWED = re.compile(r"^[0-9A-Za-z-]+$")
_LOOSE = re.compile(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
                    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$")
_CV = (r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
       r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?")
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_CONSTRAINT = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_FIND = re.compile(rf"({_OPS})\s*({_CV})")
_VALID = re.compile(rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$")


class PolicyError(ValueError):
    """The policy cannot be built, or cannot choose a tag (the message is Flux's)."""


# ---------------------------------------------------------------------------------------------- versions

@dataclasses.dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: str = ""
    original: str = ""

    @classmethod
    def parse(cls, text: str) -> "Version | None":
        """Masterminds' coerced parse (``v`` prefix, missing minor/patch, leading zeros allowed); None if
        it is not a version."""
        m = _LOOSE.match(text)
        if m is None:
            return None
        pre, metadata = m.group(5) or "", m.group(8) or ""
        for part in pre.split(".") if pre else ():
            if not part or (_NUM.match(part) and len(part) > 1 and part[0] == "0") or not _ALLOWED.match(part):
                return None
        if metadata and any(not p or not _ALLOWED.match(p) for p in metadata.split(".")):
            return None
        return cls(int(m.group(1)), int((m.group(2) or ".0")[1:]), int((m.group(3) or ".0")[1:]), pre, text)

    def compare(self, other: "Version") -> int:
        for a, b in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if a != b:
                return -1 if a < b else 1
        if self.pre == other.pre:
            return 0
        if not self.pre or not other.pre:
            return 1 if not self.pre else -1
        return _compare_prerelease(self.pre, other.pre)


def _compare_prerelease(a: str, b: str) -> int:
    left, right = a.split("."), b.split(".")
    for i in range(max(len(left), len(right))):
        s, o = (left[i] if i < len(left) else ""), (right[i] if i < len(right) else "")
        if s == o:
            continue
        if not s or not o:
            return -1 if not s else 1
        s_num, o_num = bool(_NUM.match(s)), bool(_NUM.match(o))
        if s_num and o_num:
            return 1 if int(s) > int(o) else -1
        if s_num != o_num:
            return -1 if s_num else 1  # numeric identifiers sort before alphanumeric ones
        return 1 if s > o else -1
    return 0


def parse_tag_version(tag: str) -> Version | None:
    """A tag as a version for ``semver`` policies (Flux's ``version.ParseVersion``: three parts required)."""
    return Version.parse(tag) if len(tag.split(".", 2)) == 3 else None


# ---------------------------------------------------------------------------------------------- constraints

def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclasses.dataclass(frozen=True)
class _Comparison:
    op: str
    version: Version
    original: str
    minor_dirty: bool = False
    patch_dirty: bool = False
    dirty: bool = False

    @classmethod
    def parse(cls, text: str) -> "_Comparison":
        m = _CONSTRAINT.match(text)
        if m is None:
            raise PolicyError(f"improper constraint: {text}")
        major, minor, patch, pre = m.group(3), (m.group(4) or "").lstrip("."), (m.group(5) or "").lstrip("."), \
            m.group(6) or ""
        flags = {}
        if _is_x(major) or not major:
            base, flags = f"0.0.0{pre}", {"dirty": True}
        elif _is_x(minor) or not minor:
            base, flags = f"{major}.0.0{pre}", {"dirty": True, "minor_dirty": True}
        elif _is_x(patch) or not patch:
            base, flags = f"{major}.{minor}.0{pre}", {"dirty": True, "patch_dirty": True}
        else:
            base = m.group(2)
        version = Version.parse(base)
        if version is None:
            raise PolicyError("constraint parser error")
        return cls(m.group(1), version, m.group(2), **flags)

    def check(self, v: Version, include_pre: bool) -> bool:
        if v.pre and not include_pre:
            return False
        return _CHECKS[self.op](self, v)


def _tilde(c: _Comparison, v: Version) -> bool:
    if v.compare(c.version) < 0:
        return False
    con = c.version
    if con.major == 0 and con.minor == 0 and con.patch == 0 and not c.minor_dirty and not c.patch_dirty:
        return True
    return v.major == con.major and (v.minor == con.minor or c.minor_dirty)


def _caret(c: _Comparison, v: Version) -> bool:
    con = c.version
    if v.compare(con) < 0:
        return False
    if con.major > 0 or c.minor_dirty:
        return v.major == con.major
    if v.major > 0:
        return False
    if con.minor > 0 or c.patch_dirty:
        return v.minor == con.minor
    if v.minor > 0:
        return False
    return v.patch == con.patch


def _not_equal(c: _Comparison, v: Version) -> bool:
    con = c.version
    if c.dirty:
        if con.major != v.major:
            return True
        if c.minor_dirty:
            return False
        if con.minor != v.minor:
            return True
        if c.patch_dirty:
            return bool(v.pre or con.pre) and _compare_prerelease(v.pre, con.pre) != 0
    return v.compare(con) != 0


def _greater(c: _Comparison, v: Version) -> bool:
    con = c.version
    if not c.dirty:
        return v.compare(con) > 0
    if v.major != con.major:
        return v.major > con.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > con.minor
    return v.compare(con) > 0


def _less_equal(c: _Comparison, v: Version) -> bool:
    con = c.version
    if not c.dirty:
        return v.compare(con) <= 0
    if v.major > con.major:
        return False
    return not (v.major == con.major and v.minor > con.minor and not c.minor_dirty)


_CHECKS: Mapping[str, Callable[[_Comparison, Version], bool]] = {
    "": lambda c, v: _tilde(c, v) if c.dirty else v.compare(c.version) == 0,
    "!=": _not_equal, ">": _greater, "<": lambda c, v: v.compare(c.version) < 0,
    ">=": lambda c, v: v.compare(c.version) >= 0, "<=": _less_equal, "~": _tilde, "^": _caret,
}
_CHECKS = {**_CHECKS, "=": _CHECKS[""], "=>": _CHECKS[">="], "=<": _CHECKS["<="], "~>": _tilde}


class Constraints:
    """A Masterminds constraint string: groups joined by ``||``, each a list of comparisons (AND)."""

    def __init__(self, text: str):
        self.text = text
        self.groups: list[tuple[list[_Comparison], bool]] = []
        for group in _rewrite_ranges(text).split("||"):
            if not _VALID.match(group):
                raise PolicyError(f"improper constraint: {group}")
            found = [m.group(0) for m in _FIND.finditer(group)] or [group]
            comparisons = [_Comparison.parse(s) for s in found]
            self.groups.append((comparisons, any(c.version.pre for c in comparisons)))

    def check(self, version: Version) -> bool:
        return any(all(c.check(version, has_pre) for c in group) for group, has_pre in self.groups)


def _rewrite_ranges(text: str) -> str:
    """``1.2 - 1.4.5`` → ``>= 1.2, <= 1.4.5`` (Masterminds' hyphen ranges)."""
    for m in list(_RANGE.finditer(text)):
        text = text.replace(m.group(0), f">= {m.group(1)}, <= {m.group(11)} ", 1)
    return text


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
            constraints = Constraints((policy["semver"] or {}).get("range") or "")

            def semver(tags: list[str]) -> str:
                best: Version | None = None
                for tag in tags:
                    version = parse_tag_version(tag)
                    if version is not None and constraints.check(version) and \
                            (best is None or version.compare(best) > 0):
                        best = version
                if best is None:
                    raise PolicyError("unable to determine latest version from provided list")
                return best.original

            return semver
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
        """The chosen tag (as the registry lists it)."""
        kept = self.filter(list(tags))
        if not kept:
            raise PolicyError("version list argument cannot be empty")
        return kept[self._choose(sorted(kept))]


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
