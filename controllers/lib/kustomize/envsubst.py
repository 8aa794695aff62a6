"""Flux's post-build variable substitution (``spec.postBuild``) and the ``envsubst`` syntax behind it.

Syntax (as fluxcd/pkg/envsubst v1.5, the version Flux 2.7 runs; bash-like, only the braced form):

- ``${var}``; ``$var`` (no braces) is left alone;
- ``${var:=default}`` / ``${var:-default}`` / ``${var=default}`` (and ``:+``, ``:?``, which Flux also treats
  as defaults): the default when the variable is empty or unset; defaults may hold nested ``${...}``;
- ``$$`` is an escaped ``$``: ``$${var}`` yields the literal ``${var}``;
- ``${#var}``, ``${var:offset[:length]}``, ``${var,}``, ``${var,,}``, ``${var^}``, ``${var^^}``,
  ``${var#glob}``, ``${var##glob}``, ``${var%glob}``, ``${var%%glob}``, ``${var/a/b}``, ``${var//a/b}``,
  ``${var/#a/b}``, ``${var/%a/b}``.

In strict mode only a bare ``${var}`` of an unset variable fails (:class:`VariableNotSet` names it); the
operators above tolerate it. Malformed expressions raise :class:`EnvsubstError` (``bad substitution``,
``missing closing brace``, ...). :func:`expand` is the engine; ``fluxpy envsubst`` runs it per line.

postBuild (as Flux's kustomize-controller): :class:`PostBuild` reads the variables — ``substituteFrom``
ConfigMaps/Secrets in the Kustomization's namespace, in order, later ones winning, ``optional`` ones allowed
to be missing, then ``substitute`` over them all; newlines are removed from values, names must match
:data:`VARIABLE_NAME_PATTERN` — and :meth:`PostBuild.substitute` runs on the YAML text of one built object,
unless the object opts out with the label or annotation ``kustomize.toolkit.fluxcd.io/substitute: disabled``.
As in Flux, nothing is substituted (not even defaults) when there are no variables at all, and the
variables are read only once an object needs them.
"""
from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Callable, Mapping

from controllers.api import meta

#: Label/annotation that turns substitution off for one object, and its value.
SUBSTITUTE_ANNOTATION = f"{meta.KUSTOMIZE_GROUP}/substitute"
DISABLED = "disabled"
#: Variable names Flux accepts (POSIX classes as RE2 has them: ASCII only).
VARIABLE_NAME_PATTERN = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
_VARIABLE_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*\Z")


class EnvsubstError(ValueError):
    """A malformed substitution expression, or (strict mode) an unset variable."""


class VariableNotSet(EnvsubstError):
    """Strict mode: ``${name}`` of a variable that is not set."""

    def __init__(self, name: str, message: str | None = None):
        super().__init__(message or f"variable not set (strict mode): {json.dumps(name, ensure_ascii=False)}")
        self.name = name


def _prefixed(exc: EnvsubstError, prefix: str) -> EnvsubstError:
    """The same failure, its message prefixed as Flux wraps it."""
    if isinstance(exc, VariableNotSet):
        return VariableNotSet(exc.name, f"{prefix}: {exc}")
    return EnvsubstError(f"{prefix}: {exc}")


BAD_SUBSTITUTION = "bad substitution"
MISSING_CLOSING_BRACE = "missing closing brace"
BAD_VARIABLE_NAME = "unable to parse variable name"
BAD_FUNCTION_ARGUMENT = "unable to parse substitution within function"
BAD_DEFAULT = "unable to parse default function"


# ----------------------------------------------------------------------------------------------- the engine

def expand(text: str, variables: Mapping[str, str] | Callable[[str], str | None], *, strict: bool = False) -> str:
    """Substitute the ``${...}`` expressions of ``text``.

    ``variables`` maps names to values (or is a lookup returning None for unset). An unset variable is empty,
    unless ``strict``: then a bare ``${name}`` of it raises :class:`VariableNotSet`.
    """
    lookup = variables.get if isinstance(variables, Mapping) else variables
    return "".join(_evaluate(node, lookup, strict) for node in _Parser(text).parse())


# Parse tree: a str is literal text; a _Call is one ${...} expression.
class _Call:
    __slots__ = ("param", "op", "args")

    def __init__(self, param: str = "", op: str = ""):
        self.param, self.op, self.args = param, op, []


def _evaluate(node: "str | _Call", lookup: Callable[[str], str | None], strict: bool) -> str:
    if isinstance(node, str):
        return node
    args = [_evaluate(arg, lookup, strict) for arg in node.args]  # arguments first, as Flux does
    value = lookup(node.param)
    if value is None:
        if strict and node.op == "":
            raise VariableNotSet(node.param)
        value = ""
    return _operation(node.op, len(args))(value, *args)


_EOF = "\0"  # as in Flux's scanner, a NUL character also ends the input
# scanner modes (which tokens scan() recognises) and escape sets
_IDENT, _LBRACK, _RBRACK, _ESCAPE = 1, 2, 4, 8
_DOLLAR, _BACKSLASH = 1, 2
_TEXT, _OPEN, _CLOSE, _END, _ILLEGAL = "text", "${", "}", "end", "illegal"


def _is_ident(ch: str, _i: int) -> bool:
    return ch == "_" or unicodedata.category(ch)[0] == "L" or unicodedata.category(ch) == "Nd"


def _any(_ch: str, _i: int) -> bool:
    return True


class _Parser:
    """A character scanner with modes, mirroring the token rules of Flux's envsubst parser (including how
    escapes are consumed), plus the recursive-descent rules for each operator."""

    def __init__(self, text: str):
        self.buf, self.pos, self.start, self.width = text, 0, 0, 0
        self.mode, self.escapes, self.accept = 0, 0, _any

    # -- characters
    def read(self) -> str:
        if self.pos >= len(self.buf):
            self.width = 0
            return _EOF
        self.width = 1
        self.pos += 1
        return self.buf[self.pos - 1]

    def unread(self) -> None:
        self.pos -= self.width

    def peek(self) -> str:
        ch = self.read()
        self.unread()
        return ch

    def drop_previous(self) -> None:
        """Remove the character just read (an escape character) from the input."""
        self.buf = self.buf[:self.pos - 1] + self.buf[self.pos:]

    def token_text(self) -> str:
        return self.buf[self.start:self.pos]

    # -- tokens
    def scan(self) -> str:
        self.start = self.pos
        ch = self.read()
        if ch == _EOF:
            return _END
        if self._open(ch):
            return _OPEN
        if self.mode & _RBRACK and ch == "}":
            return _CLOSE
        if self._word(ch):
            return _TEXT
        return _ILLEGAL

    def _open(self, ch: str) -> bool:
        if not self.mode & _LBRACK or ch != "$":
            return False
        if self.read() == "{":
            return True
        self.unread()
        return False

    def _escaped(self, ch: str) -> bool:
        if not self.mode & _ESCAPE:
            return False
        if ch == "$" and self.escapes & _DOLLAR and self.peek() == "$":
            return True
        if ch == "\\" and self.escapes & _BACKSLASH:
            return self.peek() in ("/", "\\")
        return False

    def _word(self, ch: str) -> bool:
        if not self.mode & _IDENT:
            return False
        if self._escaped(ch):
            self.drop_previous()
        elif not self.accept(ch, self.pos - self.start):
            return False
        while True:
            ch = self.read()
            if ch == _EOF:
                self.unread()
                break
            if self._open(ch):
                self.unread()
                self.unread()
                break
            if self._escaped(ch):
                self.drop_previous()
                continue
            if not self.accept(ch, self.pos - self.start):
                self.unread()
                break
        return True

    def expect(self, accept, mode: int) -> str:
        self.accept, self.mode = accept, mode
        return self.scan()

    # -- grammar
    def parse(self) -> list:
        nodes: list = []
        while True:
            self.escapes = _DOLLAR
            token = self.expect(_any, _IDENT | _LBRACK | _ESCAPE)
            if token == _END:
                return nodes
            if token == _TEXT:
                nodes.append(self.token_text())
            elif token == _OPEN:
                nodes.append(self.call())
            else:
                raise EnvsubstError(BAD_SUBSTITUTION)

    def call(self) -> _Call:
        self.escapes = _DOLLAR | _BACKSLASH
        if self.peek() == "#":
            return self.length()
        if self.expect(_is_ident, _IDENT) != _TEXT:
            raise EnvsubstError(BAD_VARIABLE_NAME)
        name = self.token_text()
        following = self.peek()
        if following == ":":
            return self.default_or_slice(name)
        if following == "=":
            return self.default(name)
        if following in (",", "^"):
            return self.operator_only(name, lambda c, i: c in ",^" and i < 3)
        if following == "/":
            return self.replace(name)
        if following == "#":
            return self.trim(name, lambda c, i: c == "#" and i < 3)
        if following == "%":
            return self.trim(name, lambda c, i: c == "%" and i < 3)
        if self.expect(_is_ident, _RBRACK) != _CLOSE:
            raise EnvsubstError(MISSING_CLOSING_BRACE)
        return _Call(name)

    def argument(self, accept, mode: int):
        token = self.expect(accept, mode | _LBRACK)
        if token == _OPEN:
            return self.call()
        if token in (_TEXT, _CLOSE):
            return self.token_text()
        raise EnvsubstError(BAD_FUNCTION_ARGUMENT)

    def operator(self, name: str, accept, error: str = BAD_SUBSTITUTION) -> _Call:
        if self.expect(accept, _IDENT) != _TEXT:
            raise EnvsubstError(error)
        return _Call(name, self.token_text())

    def close(self) -> None:
        self.mode = _RBRACK
        if self.scan() != _CLOSE:
            raise EnvsubstError(BAD_SUBSTITUTION)

    def default_or_slice(self, name: str) -> _Call:
        self.read()
        after_colon = self.peek()
        self.unread()
        return self.default(name) if after_colon in "=-?+" else self.slice(name)

    def default(self, name: str) -> _Call:
        if self.peek() == "=":
            accept = lambda c, i: i == 1 and c == "="  # noqa: E731
        else:
            accept = lambda c, i: (i == 1 and c == ":") or (i == 2 and c in "=-?+")  # noqa: E731
        node = self.operator(name, accept, BAD_DEFAULT)
        while self.peek() != "}":
            node.args.append(self.argument(lambda c, i: c != "}", _IDENT))
        self.close()
        return node

    def slice(self, name: str) -> _Call:
        node = self.operator(name, lambda c, i: i == 1 and c == ":")
        node.args.append(self.argument(lambda c, i: c not in ":}", _IDENT))
        token = self.expect(lambda c, i: c == ":", _IDENT | _RBRACK)
        if token == _CLOSE:
            return node
        if token != _TEXT:
            raise EnvsubstError(BAD_SUBSTITUTION)
        node.args.append(self.argument(lambda c, i: c != "}", _IDENT))
        self.close()
        return node

    def trim(self, name: str, accept) -> _Call:
        node = self.operator(name, accept)
        node.args.append(self.argument(lambda c, i: c != "}", _IDENT))
        self.close()
        return node

    def replace(self, name: str) -> _Call:
        node = self.operator(name, lambda c, i: (i == 1 and c == "/") or (i == 2 and c in "/#%"))
        node.args.append(self.argument(lambda c, i: c != "/", _IDENT | _ESCAPE))
        if self.expect(lambda c, i: c == "/", _IDENT) != _TEXT:
            raise EnvsubstError(BAD_SUBSTITUTION)
        if self.peek() != "}":
            node.args.append(self.argument(lambda c, i: c != "}", _IDENT | _ESCAPE))
        self.close()
        return node

    def operator_only(self, name: str, accept) -> _Call:
        node = self.operator(name, accept)
        self.close()
        return node

    def length(self) -> _Call:
        node = self.operator("", lambda c, i: c == "#" and i == 1)
        if self.expect(_is_ident, _IDENT) != _TEXT:
            raise EnvsubstError(BAD_SUBSTITUTION)
        node.param = self.token_text()
        self.close()
        return node


# ----------------------------------------------------------------------------------------------- operations

def _operation(op: str, argc: int) -> Callable[..., str]:
    if op == "#":
        return _length if argc == 0 else _trim_shortest_prefix
    return _OPERATIONS.get(op, _default)


def _default(value: str, *args: str) -> str:
    return "".join(args) if not value and args else value


def _length(value: str, *_args: str) -> str:
    return str(len(value.encode()))


def _atoi(text: str) -> int | None:
    """Go's strconv.Atoi: an optional sign and decimal digits, within int64."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(1 << 63) <= number < (1 << 63) else None


def _slice(value: str, *args: str) -> str:
    """``${var:offset:length}`` on the UTF-8 bytes, with bash's rules for out-of-range values."""
    data = value.encode()
    pos = _atoi(args[0]) if args else None
    if pos is None:
        return value
    if pos < 0:
        pos = max(len(data) + pos, 0)
    if len(args) == 1:
        return data[pos:].decode(errors="replace") if pos < len(data) else ""
    length = _atoi(args[1])
    if length is None:
        return value
    if pos + length >= len(data):
        return data[pos:].decode(errors="replace") if pos < len(data) else ""
    return data[pos:pos + length].decode(errors="replace") if length > 0 else ""


def _lower_first(value: str, *_args: str) -> str:
    return value[:1].lower() + value[1:]


def _upper_first(value: str, *_args: str) -> str:
    return value[:1].upper() + value[1:]


def _replace_all(value: str, *args: str) -> str:
    return value if not args else value.replace(args[0], args[1] if len(args) > 1 else "")


def _replace_first(value: str, *args: str) -> str:
    return value if not args else value.replace(args[0], args[1] if len(args) > 1 else "", 1)


def _replace_prefix(value: str, *args: str) -> str:
    if len(args) != 2 or not value.startswith(args[0]):
        return value
    return args[1] + value[len(args[0]):]


def _replace_suffix(value: str, *args: str) -> str:
    if len(args) != 2 or not value.endswith(args[0]):
        return value
    return value[:len(value) - len(args[0])] + args[1]


class _BadPattern(Exception):
    pass


def _glob_match(pattern: str, name: str) -> bool:
    """Shell glob matching of a whole string, where ``*`` and ``?`` also match ``/`` (Flux's variant of
    Go's path.Match); raises :class:`_BadPattern` for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _next_chunk(pattern)
        if star and not chunk:
            return True
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            for i in range(len(name)):
                rest = _match_chunk(chunk, name[i + 1:])
                if rest is not None:
                    if not pattern and rest:
                        continue
                    name = rest
                    break
            else:
                return False
            continue
        return False
    return not name


def _next_chunk(pattern: str) -> tuple[bool, str, str]:
    stripped = pattern.lstrip("*")
    star, pattern = len(stripped) != len(pattern), stripped
    in_range, i = False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> str | None:
    """The rest of ``s`` after ``chunk`` matched its start, or None."""
    while chunk:
        if not s:
            return None
        ch = chunk[0]
        if ch == "[":
            char, s, chunk = s[0], s[1:], chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched, ranges = False, 0
            while True:
                if chunk.startswith("]") and ranges:
                    chunk = chunk[1:]
                    break
                lo, chunk = _class_char(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _class_char(chunk[1:])
                matched = matched or lo <= char <= hi
                ranges += 1
            if matched == negated:
                return None
            continue
        if ch == "?":
            s, chunk = s[1:], chunk[1:]
            continue
        if ch == "\\":
            chunk = chunk[1:]
            if not chunk:
                raise _BadPattern()
        if chunk[0] != s[0]:
            return None
        s, chunk = s[1:], chunk[1:]
    return s


def _class_char(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _BadPattern()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern()
    if len(chunk) < 2:
        raise _BadPattern()
    return chunk[0], chunk[1:]


def _trim_shortest_prefix(value: str, *args: str) -> str:
    if not args:
        return value
    shortest = ""
    for end in range(len(value), 0, -1):
        try:
            if _glob_match(args[0], value[:end]):
                shortest = value[:end]
        except _BadPattern:
            return value
    return value[len(shortest):]


def _trim_longest_prefix(value: str, *args: str) -> str:
    if not args:
        return value
    for end in range(len(value), 0, -1):
        try:
            if _glob_match(args[0], value[:end]):
                return value[end:]
        except _BadPattern:
            return value
    return value


def _reversed(trim: Callable[..., str]) -> Callable[..., str]:
    """A suffix trim from a prefix trim, by reversing the value and the pattern (as Flux does)."""
    return lambda value, *args: trim(value[::-1], *(a[::-1] for a in args[:1]))[::-1] if args else value


_OPERATIONS: dict[str, Callable[..., str]] = {
    ",": _lower_first, ",,": lambda v, *a: v.lower(), "^": _upper_first, "^^": lambda v, *a: v.upper(),
    "##": _trim_longest_prefix, "%": _reversed(_trim_shortest_prefix), "%%": _reversed(_trim_longest_prefix),
    ":": _slice, "/#": _replace_prefix, "/%": _replace_suffix, "/": _replace_first, "//": _replace_all,
}


# ----------------------------------------------------------------------------------------------- postBuild

def disabled_for(obj: dict) -> bool:
    """Whether the object opts out of substitution (label or annotation ``...substitute: disabled``)."""
    metadata = obj.get("metadata") or {}
    return any((metadata.get(field) or {}).get(SUBSTITUTE_ANNOTATION) == DISABLED
               for field in ("labels", "annotations"))


def substitute_text(text: str, variables: Mapping[str, str], *, strict: bool = False) -> str:
    """Flux's varSubstitution on one object's YAML: names validated, then :func:`expand`.

    Raises EnvsubstError with Flux's message ("'x-y' var name is invalid, ...", "variable substitution
    failed: ...").
    """
    invalid = sorted(name for name in variables if not _VARIABLE_NAME.match(name))
    if invalid:
        raise EnvsubstError(f"'{invalid[0]}' var name is invalid, must match '{VARIABLE_NAME_PATTERN}'")
    try:
        return expand(text, variables if strict else (lambda name: variables.get(name, "")), strict=strict)
    except EnvsubstError as exc:
        raise _prefixed(exc, "variable substitution failed") from None


class PostBuild:
    """``spec.postBuild`` of one Kustomization, for one build.

    ``kube`` reads ``substituteFrom`` (None, or ``dry_run``, skips them as ``flux build --dry-run`` does);
    the variables are read on first use and kept for the rest of the build.
    """

    def __init__(self, post_build: dict, namespace: str, kube=None, *, strict: bool = False, dry_run: bool = False):
        self.spec, self.namespace, self.kube = post_build or {}, namespace, kube
        self.strict, self.dry_run = strict, dry_run
        self._variables: dict[str, str] | None = None

    def variables(self) -> dict[str, str]:
        """substituteFrom (in order, later ones winning), then ``substitute``; newlines removed."""
        if self._variables is None:
            found: dict[str, str] = {}
            if not self.dry_run and self.kube is not None:
                for ref in self.spec.get("substituteFrom") or []:
                    found.update(self._read(ref))
            for key, value in (self.spec.get("substitute") or {}).items():
                found[key] = str(value).replace("\n", "")
            self._variables = found
        return self._variables

    def _read(self, ref: dict) -> dict[str, str]:
        from controllers.api.builtin import CONFIGMAP, SECRET
        from controllers.runtime.kube import KubeError, NotFound

        kind, name = ref.get("kind"), ref.get("name", "")
        if kind not in ("ConfigMap", "Secret"):
            return {}
        try:
            obj = self.kube.get(SECRET if kind == "Secret" else CONFIGMAP, name, self.namespace)
        except NotFound as exc:
            if ref.get("optional"):
                return {}
            raise EnvsubstError(f"substitute from '{kind}/{name}' error: {exc.message}") from None
        except KubeError as exc:
            raise EnvsubstError(f"substitute from '{kind}/{name}' error: {exc.message}") from None
        data = obj.get("data") or {}
        if kind == "Secret":
            return {k: base64.b64decode(v).decode(errors="replace").replace("\n", "") for k, v in data.items()}
        return {k: str(v).replace("\n", "") for k, v in data.items()}

    def substitute(self, obj: dict, text: str) -> str | None:
        """The substituted YAML ``text`` of built object ``obj``; None when nothing is to be done (the object
        opts out, or there are no variables). Raises EnvsubstError ("envsubst error: ...")."""
        if disabled_for(obj):
            return None
        variables = self.variables()
        if not variables:
            return None
        try:
            return substitute_text(text, variables, strict=self.strict)
        except EnvsubstError as exc:
            raise _prefixed(exc, "envsubst error") from None
