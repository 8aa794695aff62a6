"""Semantic versions and version constraints with the semantics of Masterminds/semver v3 (what Flux and
Helm use): lenient versions (``v`` prefix, missing minor/patch), and constraints such as ``*``, ``1.x``,
``~1.2``, ``^0.3``, ``>=1.0 <2.0``, ``1.0 - 2.0``, ``!=1.1`` and ``a || b``.

Prereleases only match a constraint whose own version has a prerelease (per ``||`` alternative), as in
Masterminds. :func:`parse_version` is Flux's stricter variant (three dot-separated parts required).
"""
from __future__ import annotations

import dataclasses
import functools
import re

_LOOSE = re.compile(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?"
                    r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
                    r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$")
_IDENT = re.compile(r"^[0-9A-Za-z-]+$")
_CV = (r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?"
       r"(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?"
       r"(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?")
# Masterminds' operator alternation, in its order (Go's regexp is leftmost-first, as Python's).
_OPS = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^"
_CONSTRAINT = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")
_FIND = re.compile(rf"({_OPS})\s*({_CV})")
_VALID = re.compile(rf"^(\s*({_OPS})\s*({_CV})\s*)((?:\s+|,\s*)({_OPS})\s*({_CV})\s*)*$")


class InvalidVersion(ValueError):
    """Not a semantic version."""


class InvalidConstraint(ValueError):
    """Not a version constraint."""


@functools.total_ordering
@dataclasses.dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; compares by precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""
    original: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text

    def compare(self, other: "Version") -> int:
        for a, b in ((self.major, other.major), (self.minor, other.minor), (self.patch, other.patch)):
            if a != b:
                return -1 if a < b else 1
        if not self.prerelease and not other.prerelease:
            return 0
        if not self.prerelease:
            return 1
        if not other.prerelease:
            return -1
        return _compare_prerelease(self.prerelease, other.prerelease)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.compare(other) == 0

    def __lt__(self, other: "Version") -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.patch, self.prerelease))

    def with_metadata(self, metadata: str) -> "Version":
        """This version with its build metadata replaced (``1.2.3+<metadata>``)."""
        if metadata and not all(_IDENT.match(part) for part in metadata.split(".")):
            raise InvalidVersion(f"invalid metadata string: {metadata!r}")
        prefix = "v" if self.original.startswith("v") else ""
        bare = dataclasses.replace(self, metadata=metadata, original="")
        return dataclasses.replace(bare, original=prefix + str(bare))


def _compare_prerelease(a: str, b: str) -> int:
    pa, pb = a.split("."), b.split(".")
    for i in range(max(len(pa), len(pb))):
        d = _compare_part(pa[i] if i < len(pa) else "", pb[i] if i < len(pb) else "")
        if d:
            return d
    return 0


def _compare_part(s: str, o: str) -> int:
    if s == o:
        return 0
    if s == "":
        return -1
    if o == "":
        return 1
    s_num, o_num = s.isdigit(), o.isdigit()
    if not s_num and not o_num:
        return 1 if s > o else -1
    if not o_num:
        return -1
    if not s_num:
        return 1
    return 1 if int(s) > int(o) else -1


def new_version(text: str) -> Version:
    """Parse leniently (``v1``, ``1.2``, ``v1.2.3-rc.1+build``), as Masterminds' NewVersion."""
    m = _LOOSE.match(text or "")
    if not m:
        raise InvalidVersion(f"invalid semantic version: {text!r}")
    pre, meta = m.group(5) or "", m.group(8) or ""
    for part in pre.split(".") if pre else ():
        if part.isdigit() and len(part) > 1 and part[0] == "0":
            raise InvalidVersion(f"version segment starts with 0: {text!r}")
    return Version(int(m.group(1)), int((m.group(2) or ".0")[1:]), int((m.group(3) or ".0")[1:]),
                   pre, meta, text)


def parse_version(text: str) -> Version:
    """Flux's ParseVersion: like :func:`new_version` but with three dot-separated parts."""
    if len((text or "").split(".", 2)) != 3:
        raise InvalidVersion(f"invalid semantic version: {text!r}")
    return new_version(text)


def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclasses.dataclass(frozen=True)
class _Term:
    op: str
    version: Version
    orig: str
    dirty: bool = False
    minor_dirty: bool = False
    patch_dirty: bool = False

    def check(self, v: Version, include_pre: bool) -> bool:
        if v.prerelease and not include_pre:
            return False
        return _OPERATORS[self.op](self, v)


def _parse_term(text: str) -> _Term:
    m = _CONSTRAINT.match(text)
    if not m:
        raise InvalidConstraint(f"improper constraint: {text}")
    op, orig = m.group(1), m.group(2)
    major, minor, patch, pre = m.group(3), m.group(4) or "", m.group(5) or "", m.group(6) or ""
    dirty = minor_dirty = patch_dirty = False
    ver = orig
    if _is_x(major) or major == "":
        ver, dirty = f"0.0.0{pre}", True
    elif _is_x(minor[1:]) or minor == "":
        ver, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif _is_x(patch[1:]) or patch == "":
        ver, dirty, patch_dirty = f"{major}{minor}.0{pre}", True, True
    try:
        version = new_version(ver)
    except InvalidVersion:
        raise InvalidConstraint("constraint parser error") from None
    return _Term(op, version, orig, dirty, minor_dirty, patch_dirty)


def _not_equal(c: _Term, v: Version) -> bool:
    if c.dirty:
        if c.version.major != v.major:
            return True
        if c.version.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if c.version.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.prerelease or c.version.prerelease:
                return _compare_prerelease(v.prerelease, c.version.prerelease) != 0
            return False
    return v != c.version


def _greater(c: _Term, v: Version) -> bool:
    if not c.dirty:
        return v.compare(c.version) == 1
    if v.major != c.version.major:
        return v.major > c.version.major
    if c.minor_dirty:
        return False
    if c.patch_dirty:
        return v.minor > c.version.minor
    return v.compare(c.version) == 1


def _less_equal(c: _Term, v: Version) -> bool:
    if not c.dirty:
        return v.compare(c.version) <= 0
    if v.major > c.version.major:
        return False
    return not (v.major == c.version.major and v.minor > c.version.minor and not c.minor_dirty)


def _tilde(c: _Term, v: Version) -> bool:
    if v < c.version:
        return False
    if (c.version.major, c.version.minor, c.version.patch) == (0, 0, 0) and not c.minor_dirty \
            and not c.patch_dirty:
        return True
    if v.major != c.version.major:
        return False
    return not (v.minor != c.version.minor and not c.minor_dirty)


def _tilde_or_equal(c: _Term, v: Version) -> bool:
    return _tilde(c, v) if c.dirty else v == c.version


def _caret(c: _Term, v: Version) -> bool:
    if v < c.version:
        return False
    if c.version.major > 0 or c.minor_dirty:
        return v.major == c.version.major
    if v.major > 0:
        return False
    if c.version.minor > 0 or c.patch_dirty:
        return v.minor == c.version.minor
    if v.minor > 0:
        return False
    return c.version.patch == v.patch


_OPERATORS = {
    "": _tilde_or_equal, "=": _tilde_or_equal, "!=": _not_equal,
    ">": _greater, "<": lambda c, v: v.compare(c.version) < 0,
    ">=": lambda c, v: v.compare(c.version) >= 0, "=>": lambda c, v: v.compare(c.version) >= 0,
    "<=": _less_equal, "=<": _less_equal, "~": _tilde, "~>": _tilde, "^": _caret,
}


@dataclasses.dataclass(frozen=True)
class Constraint:
    """A parsed constraint: alternatives (``||``) of terms that must all hold."""

    text: str
    alternatives: tuple[tuple[_Term, ...], ...]

    def check(self, v: Version) -> bool:
        for terms in self.alternatives:
            include_pre = any(t.version.prerelease for t in terms)
            if all(t.check(v, include_pre) for t in terms):
                return True
        return False


def new_constraint(text: str) -> Constraint:
    """Parse a constraint as Masterminds' NewConstraint; :class:`InvalidConstraint` when malformed."""
    rewritten = text
    for m in _RANGE.finditer(text):
        rewritten = rewritten.replace(m.group(0), f">= {m.group(1)}, <= {m.group(11)} ", 1)
    alternatives = []
    for part in rewritten.split("||"):
        if not _VALID.match(part):
            raise InvalidConstraint(f"improper constraint: {part}")
        found = [m.group(0) for m in _FIND.finditer(part)] or [part]
        alternatives.append(tuple(_parse_term(s) for s in found))
    return Constraint(text, tuple(alternatives))


def latest_matching(candidates: list[str], wanted: str) -> str | None:
    """Flux's choice among version strings: an exact match of ``wanted`` first, else the highest
    version (three-part, :func:`parse_version`) satisfying the constraint (``""`` or ``*``: any stable).
    Raises :class:`InvalidConstraint` for a malformed constraint; None when nothing matches."""
    if wanted and wanted in candidates:
        return wanted
    constraint = new_constraint("*" if wanted in ("", "*") else wanted)
    best: tuple[Version, str] | None = None
    for text in candidates:
        try:
            v = parse_version(text)
        except InvalidVersion:
            continue
        if constraint.check(v) and (best is None or v > best[0]):
            best = (v, text)
    return best[1] if best else None
