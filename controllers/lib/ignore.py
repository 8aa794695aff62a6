""".sourceignore semantics (gitignore patterns), as Flux's sourceignore package applies them.

A pattern belongs to a *domain* (the directory of the ``.sourceignore`` file that declared it, as path
components) and matches paths below it. Without a slash a pattern matches any path component
(``*.yaml``, ``build``); with a slash it is a glob over components anchored at the domain (``/deploy/*.yaml``,
``docs/**/draft``), and matches everything below what it matches; a trailing ``/`` restricts it to
directories; a leading ``!`` re-includes. The last matching pattern wins.

What is left out of an artifact (:func:`source_filter`): always the VCS files (``.git/``, ``.gitignore``,
``.gitmodules``, ``.gitattributes``); when neither a ``.sourceignore`` file nor ``spec.ignore`` gives a
pattern, also Flux's default excludes (images, archives, CI configuration, ...).
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

from controllers.lib.archive import ArchiveFilter

IGNORE_FILE = ".sourceignore"
EXCLUDE_VCS = ".git/,.gitignore,.gitmodules,.gitattributes"
EXCLUDE_EXT = "*.jpg,*.jpeg,*.gif,*.png,*.wmv,*.flv,*.tar.gz,*.zip"
EXCLUDE_CI = (".github/,.circleci/,.travis.yml,.gitlab-ci.yml,appveyor.yml,.drone.yml,cloudbuild.yaml,"
              "codeship-services.yml,codeship-steps.yml")
EXCLUDE_EXTRA = "**/.goreleaser.yml,**/.sops.yaml,**/.flux.yaml"

NO_MATCH, EXCLUDE, INCLUDE = 0, 1, 2


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern | None:
    """Go's filepath.Match syntax for one path component as a regex; None when malformed."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                return None
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            chars = []
            closed = False
            first = True
            while j < n:
                if pattern[j] == "]" and not first:
                    closed = True
                    break
                first = False
                if pattern[j] == "\\":
                    j += 1
                    if j >= n:
                        return None
                    chars.append(re.escape(pattern[j]))
                elif pattern[j] == "-" and chars and j + 1 < n and pattern[j + 1] != "]":
                    chars.append("-")
                else:
                    chars.append(re.escape(pattern[j]) if pattern[j] in "\\^[]" else pattern[j])
                j += 1
            if not closed or not chars:
                return None
            out.append(f"[{'^' if negate else ''}{''.join(chars)}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z", re.DOTALL)
    except re.error:
        return None


def _match(pattern: str, name: str) -> bool:
    if not any(c in pattern for c in "*?[\\"):
        return pattern == name
    rx = glob_regex(pattern)
    return bool(rx and rx.match(name))


class Pattern:
    """One gitignore pattern in a domain (see the module docstring)."""

    def __init__(self, text: str, domain: Sequence[str] = ()):
        self.text, self.domain = text, tuple(domain)
        p = text
        self.inclusion = p.startswith("!")
        if self.inclusion:
            p = p[1:]
        if not p.endswith("\\ "):
            p = p.rstrip(" ")
        self.dir_only = p.endswith("/")
        if self.dir_only:
            p = p[:-1]
        self.is_glob = "/" in p
        self.parts = p.split("/")

    def match(self, path: Sequence[str], is_dir: bool) -> int:
        """NO_MATCH, EXCLUDE or INCLUDE for a path given as components (relative to the archive root)."""
        if len(path) <= len(self.domain) or tuple(path[:len(self.domain)]) != self.domain:
            return NO_MATCH
        rest = list(path[len(self.domain):])
        ok = self._glob_match(rest, is_dir) if self.is_glob else self._name_match(rest, is_dir)
        if not ok:
            return NO_MATCH
        return INCLUDE if self.inclusion else EXCLUDE

    def _name_match(self, path: list[str], is_dir: bool) -> bool:
        for i, name in enumerate(path):
            if not _match(self.parts[0], name):
                continue
            if self.dir_only and not is_dir and i == len(path) - 1:
                return False
            return True
        return False

    def _glob_match(self, path: list[str], is_dir: bool) -> bool:
        matched = traverse = False
        for i, part in enumerate(self.parts):
            if part == "":
                traverse = False
                continue
            if part == "**":
                if i == len(self.parts) - 1:
                    break
                traverse = True
                continue
            if "**" in part or not path:
                return False
            if traverse:
                traverse = False
                while path:
                    name = path.pop(0)
                    if _match(part, name):
                        matched = True
                        break
                    if not path:
                        matched = False
            else:
                if not _match(part, path[0]):
                    return False
                matched = True
                path = path[1:]
        if matched and self.dir_only and not is_dir and not path:
            return False
        return matched


class Matcher:
    """A list of patterns; the last one matching a path decides."""

    def __init__(self, patterns: Iterable[Pattern]):
        self.patterns = list(patterns)

    def excludes(self, path: Sequence[str], is_dir: bool) -> bool:
        for pattern in reversed(self.patterns):
            result = pattern.match(path, is_dir)
            if result != NO_MATCH:
                return result == EXCLUDE
        return False


def read_patterns(text: str, domain: Sequence[str] = ()) -> list[Pattern]:
    """The patterns of a .sourceignore text (comments and blank lines skipped)."""
    return [Pattern(line, domain) for line in text.splitlines()
            if not line.startswith("#") and line.strip()]


def _split(patterns: str, domain: Sequence[str]) -> list[Pattern]:
    return [Pattern(p, domain) for p in patterns.split(",")]


def vcs_patterns(domain: Sequence[str] = ()) -> list[Pattern]:
    return _split(EXCLUDE_VCS, domain)


def default_patterns(domain: Sequence[str] = ()) -> list[Pattern]:
    return _split(",".join((EXCLUDE_EXT, EXCLUDE_CI, EXCLUDE_EXTRA)), domain)


def load_ignore_files(root: str | os.PathLike, domain: Sequence[str] = ()) -> list[Pattern]:
    """The patterns of every ``.sourceignore`` under ``root`` (outside ``.git``), each in its directory's
    domain, parents before children."""
    root = Path(root)
    patterns: list[Pattern] = []
    try:
        patterns += read_patterns((root / IGNORE_FILE).read_text(errors="replace"), domain)
    except FileNotFoundError:
        pass
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False) and entry.name != ".git":
            patterns += load_ignore_files(entry.path, (*domain, entry.name))
    return patterns


def archive_filter(patterns: Sequence[Pattern]) -> ArchiveFilter:
    """Flux's SourceIgnoreFilter: VCS files plus ``patterns``, or VCS files plus the defaults when there
    are no patterns. Returns the ``(relative path, is_dir) -> leave out`` function Storage.archive takes."""
    if patterns:
        matcher = Matcher([*vcs_patterns(), *patterns])
    else:
        matcher = Matcher([*vcs_patterns(), *default_patterns()])
    return lambda rel, is_dir: matcher.excludes(rel.split("/"), is_dir)


def source_filter(root: str | os.PathLike, spec_ignore: str | None) -> ArchiveFilter:
    """The filter for archiving ``root``: its ``.sourceignore`` files, then ``spec.ignore``."""
    patterns = load_ignore_files(root)
    if spec_ignore is not None:
        patterns += read_patterns(spec_ignore)
    return archive_filter(patterns)
