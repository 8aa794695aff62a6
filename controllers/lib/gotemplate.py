"""Go's ``text/template``, the part commit-message templates use (Flux's ImageUpdateAutomation
``messageTemplate``), with a subset of Sprig's functions.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``; pipelines
(``|``), parenthesised pipelines, fields and chains (``.A.B``, ``$x.A``, ``$``), variables (``:=``, ``=``),
``if``/``else if``/``else``, ``range`` (slices, maps in sorted key order, integers; ``$i, $v :=``; ``else``;
``break``/``continue``), ``with``/``else with``, literals (strings with Go escapes, raw strings, numbers,
``true``/``false``/``nil``). Functions: Go's ``and or not len index slice print printf println eq ne lt le
gt ge``, and Sprig's ``upper lower title trim trimAll trimPrefix trimSuffix replace contains hasPrefix
hasSuffix quote squote repeat trunc nospace indent nindent default empty coalesce join split splitList
list dict keys sortAlpha uniq first last toString add sub mul div mod max min``. Not supported (an error
that says so): ``define``/``template``/``block``, method calls with arguments, ``call``.

Data: dicts are Go maps (a missing key is ``<no value>``), objects are structs (attributes are fields;
a missing one is an error worded as Go's: ``can't evaluate field X in type T``, T from ``go_type``),
``str()`` of an object is its ``String()``.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

NO_VALUE = "<no value>"


class TemplateError(ValueError):
    """A parse or execution error, worded as Go's (``template: <name>:<line>: …``)."""


# ------------------------------------------------------------------------------------------------ lexing

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
_CHAIN = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclasses.dataclass
class _Tok:
    kind: str
    text: str
    start: int = 0
    end: int = 0


def _tokens(source: str, fail: Callable[[str], TemplateError]) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if not m:
            raise fail(f"unexpected {source[pos]!r} in command")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        text = m.group(kind)
        # a field chain directly after ``)`` or a variable: ``(x).A``, ``$x.A``
        if kind == "field" and text != "." and out and out[-1].end == m.start() \
                and out[-1].kind in ("rparen", "variable"):
            kind = "chain"
        out.append(_Tok(kind, text, m.start(), m.end()))
    return out


# ------------------------------------------------------------------------------------------------ nodes

@dataclasses.dataclass
class _Pipe:
    decl: list[str]
    assign: bool
    cmds: list[list[Any]]  # each command: operands (("field", names), ("var", name, names), ("lit", v),
    line: int               # ("ident", name), ("pipe", _Pipe, names))


@dataclasses.dataclass
class _Node:
    kind: str                     # text, action, if, range, with, break, continue
    text: str = ""
    pipe: _Pipe | None = None
    body: list = dataclasses.field(default_factory=list)
    orelse: list = dataclasses.field(default_factory=list)


_KEYWORDS = ("if", "range", "with", "else", "end", "break", "continue", "define", "template", "block")


class Template:
    """A parsed template: ``Template(source, name).execute(data, funcs)`` → text."""

    def __init__(self, source: str, name: str = "template"):
        self.name = name
        self._source = source
        self._items = self._lex(source)
        self._pos = 0
        self.root = self._parse_list(top=True)

    # ---------------------------------------------------------------- parsing

    def _error(self, line: int, message: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line}: {message}")

    def _lex(self, source: str) -> list[tuple[str, str, int]]:
        items, pos = [], 0
        for m in _ACTION.finditer(source):
            text = source[pos:m.start()]
            if m.group(1):
                text = text.rstrip(" \t\r\n")
            items.append(("text", text, 0))
            body = m.group(2)
            line = source.count("\n", 0, m.start()) + 1
            items.append(("action", body.strip(), line))
            pos = m.end()
            if m.group(3):
                while pos < len(source) and source[pos] in " \t\r\n":
                    pos += 1
        items.append(("text", source[pos:], 0))
        if "{{" in source[pos:]:
            raise self._error(source.count("\n", 0, source.index("{{", pos)) + 1, "unclosed action")
        return [i for i in items if not (i[0] == "text" and not i[1])]

    def _parse_list(self, top: bool = False) -> list[_Node]:
        nodes: list[_Node] = []
        while self._pos < len(self._items):
            kind, text, line = self._items[self._pos]
            if kind == "text":
                nodes.append(_Node("text", text))
                self._pos += 1
                continue
            if text.startswith("/*"):
                if not text.endswith("*/"):
                    raise self._error(line, "unclosed comment")
                self._pos += 1
                continue
            word = text.split(None, 1)[0] if text else ""
            if word in ("end", "else"):
                if top:
                    raise self._error(line, f"unexpected {{{{{word}}}}}")
                return nodes
            self._pos += 1
            if word in ("if", "range", "with"):
                nodes.append(self._parse_control(word, text[len(word):], line))
            elif word in ("break", "continue"):
                nodes.append(_Node(word))
            elif word in ("define", "template", "block"):
                raise self._error(line, f"{{{{{word}}}}} is not supported by fluxpy's templates")
            else:
                nodes.append(_Node("action", pipe=self._parse_pipe(text, line)))
        if not top:
            raise self._error(self._items[-1][2] if self._items else 1, "unexpected EOF")
        return nodes

    def _parse_control(self, word: str, rest: str, line: int) -> _Node:
        node = _Node(word, pipe=self._parse_pipe(rest, line, allow_decl=True, two_vars=word == "range"))
        node.body = self._parse_list()
        kind, text, end_line = self._items[self._pos]
        self._pos += 1
        if text.split(None, 1)[0] == "else":
            rest_else = text[4:].strip()
            if rest_else.split(None, 1)[:1] in (["if"], ["with"]):
                inner = rest_else.split(None, 1)[0]
                nested = self._parse_control(inner, rest_else[len(inner):], end_line)
                node.orelse = [nested]
                return node  # the nested control consumed the shared {{end}}
            node.orelse = self._parse_list()
            self._pos += 1  # {{end}}
        return node

    def _parse_pipe(self, text: str, line: int, allow_decl: bool = True, two_vars: bool = False) -> _Pipe:
        toks = _tokens(text, lambda msg: self._error(line, msg))
        if not toks:
            raise self._error(line, "missing value for command")
        decl, assign = [], False
        # declarations: $x := / $x = / $i, $v :=
        i = 0
        if toks[0].kind == "variable":
            names = [toks[0].text]
            j = 1
            if two_vars and len(toks) > 2 and toks[1].kind == "comma" and toks[2].kind == "variable":
                names.append(toks[2].text)
                j = 3
            if len(toks) > j and toks[j].kind in ("declare", "assign"):
                decl, assign, i = names, toks[j].kind == "assign", j + 1
        pipe, i = self._parse_commands(toks, i, line, end=None)
        return _Pipe(decl, assign, pipe, line)

    def _parse_commands(self, toks: list[_Tok], i: int, line: int, end: str | None) -> tuple[list, int]:
        cmds: list[list] = [[]]
        while i < len(toks):
            tok = toks[i]
            if end and tok.kind == end:
                break
            i += 1
            if tok.kind == "pipe":
                if not cmds[-1]:
                    raise self._error(line, "missing command before |")
                cmds.append([])
            elif tok.kind == "lparen":
                inner, i = self._parse_commands(toks, i, line, end="rparen")
                if i >= len(toks):
                    raise self._error(line, "unclosed left paren")
                i += 1
                names: list[str] = []
                if i < len(toks) and toks[i].kind == "chain":
                    names = toks[i].text.split(".")[1:]
                    i += 1
                cmds[-1].append(("pipe", _Pipe([], False, inner, line), names))
            elif tok.kind == "rparen":
                raise self._error(line, "unexpected right paren")
            elif tok.kind == "field":
                cmds[-1].append(("field", [] if tok.text == "." else tok.text.split(".")[1:]))
            elif tok.kind == "variable":
                chain: list[str] = []
                if i < len(toks) and toks[i].kind == "chain":
                    chain = toks[i].text.split(".")[1:]
                    i += 1
                cmds[-1].append(("var", tok.text, chain))
            elif tok.kind == "chain":
                raise self._error(line, f"unexpected {tok.text}")
            elif tok.kind == "ident":
                if tok.text in ("true", "false"):
                    cmds[-1].append(("lit", tok.text == "true"))
                elif tok.text == "nil":
                    cmds[-1].append(("lit", None))
                else:
                    cmds[-1].append(("ident", tok.text))
            elif tok.kind in ("string", "raw", "char", "number"):
                cmds[-1].append(("lit", _literal(tok)))
            else:
                raise self._error(line, f"unexpected {tok.text!r} in command")
        if not cmds[-1]:
            raise self._error(line, "missing value for command")
        return cmds, i

    # ---------------------------------------------------------------- execution

    def execute(self, data: Any, funcs: dict[str, Callable] | None = None) -> str:
        out: list[str] = []
        scope = [{"$": data}]
        self._funcs = {**FUNCS, **(funcs or {})}
        self._run(self.root, data, scope, out)
        return "".join(out)

    def _run(self, nodes: list[_Node], dot: Any, scope: list[dict], out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "action":
                value = self._pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    out.append(go_print(value))
            elif node.kind in ("if", "with"):
                self._conditional(node, dot, scope, out)
            elif node.kind == "range":
                self._range(node, dot, scope, out)
            elif node.kind == "break":
                raise _Break()
            elif node.kind == "continue":
                raise _Continue()

    def _conditional(self, node: _Node, dot: Any, scope: list[dict], out: list[str]) -> None:
        """``if`` runs its body with dot unchanged; ``with`` runs it with dot set to the pipeline's value."""
        scope.append({})
        try:
            value = self._pipe(node.pipe, dot, scope)
            if truth(value):
                self._run(node.body, value if node.kind == "with" else dot, scope, out)
            else:
                self._run(node.orelse, dot, scope, out)
        finally:
            scope.pop()

    def _range(self, node: _Node, dot: Any, scope: list[dict], out: list[str]) -> None:
        decl = node.pipe.decl
        value = self._pipe(_Pipe([], False, node.pipe.cmds, node.pipe.line), dot, scope)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value, key=_sort_key)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None:
            items = []
        else:
            raise self._error(node.pipe.line, f"range can't iterate over {go_print(value)}")
        if not items:
            self._run(node.orelse, dot, scope, out)
            return
        for key, item in items:
            frame = {}
            if len(decl) == 1:
                frame[decl[0]] = item
            elif len(decl) == 2:
                frame[decl[0]], frame[decl[1]] = key, item
            scope.append(frame)
            try:
                self._run(node.body, item, scope, out)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                scope.pop()

    def _pipe(self, pipe: _Pipe, dot: Any, scope: list[dict]) -> Any:
        value, piped = None, False
        for cmd in pipe.cmds:
            value = self._command(cmd, dot, scope, value if piped else _MISSING, pipe.line)
            piped = True
        if pipe.decl:
            if pipe.assign:
                for frame in reversed(scope):
                    if pipe.decl[0] in frame:
                        frame[pipe.decl[0]] = value
                        break
                else:
                    raise self._error(pipe.line, f"undefined variable: {pipe.decl[0]}")
            elif len(pipe.decl) == 1:
                scope[-1][pipe.decl[0]] = value
        return value

    def _command(self, cmd: list, dot: Any, scope: list[dict], piped: Any, line: int) -> Any:
        head = cmd[0]
        if head[0] == "ident":
            fn = self._funcs.get(head[1])
            if fn is None:
                raise self._error(line, f'function "{head[1]}" not defined')
            args = [self._operand(op, dot, scope, line) for op in cmd[1:]]
            if piped is not _MISSING:
                args.append(piped)
            try:
                return fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
                raise self._error(line, f"error calling {head[1]}: {exc}") from None
        if len(cmd) > 1 or piped is not _MISSING:
            raise self._error(line, f"can't give argument to non-function {_describe(head)}")
        return self._operand(head, dot, scope, line)

    def _operand(self, op: tuple, dot: Any, scope: list[dict], line: int) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "field":
            return self._fields(dot, op[1], line)
        if kind == "var":
            for frame in reversed(scope):
                if op[1] in frame:
                    return self._fields(frame[op[1]], op[2], line)
            raise self._error(line, f"undefined variable: {op[1]}")
        if kind == "pipe":
            return self._fields(self._pipe(op[1], dot, scope), op[2], line)
        if kind == "ident":
            fn = self._funcs.get(op[1])
            if fn is None:
                raise self._error(line, f'function "{op[1]}" not defined')
            return fn()
        raise self._error(line, "bad operand")

    def _fields(self, value: Any, names: list[str], line: int) -> Any:
        shown = ""
        for name in names:
            shown += "." + name
            if isinstance(value, dict):
                value = value[name] if name in value else getattr(value, "zero", _NoValue())
            elif value is None or isinstance(value, _NoValue):
                raise self._error(line, f'executing "{self.name}" at <{shown}>: nil pointer evaluating '
                                        f"interface {{}}.{name}")
            else:
                attr = getattr(value, name, _MISSING) if not name.startswith("_") else _MISSING
                if attr is _MISSING:
                    raise self._error(line, f'executing "{self.name}" at <{shown}>: can\'t evaluate field {name} '
                                            f"in type {getattr(value, 'go_type', type(value).__name__)}")
                value = attr() if callable(attr) else attr
        return value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class StringMap(dict):
    """A Go ``map[string]string``: a missing key is ``""`` (not ``<no value>``)."""

    zero = ""


class _NoValue:
    def __str__(self) -> str:
        return NO_VALUE

    def __bool__(self) -> bool:
        return False


_MISSING = object()


def _describe(op: tuple) -> str:
    if op[0] == "field":
        return "." + ".".join(op[1])
    if op[0] == "var":
        return op[1]
    return repr(op[1]) if op[0] == "lit" else str(op[1])


def _literal(tok: _Tok) -> Any:
    text = tok.text
    if tok.kind == "raw":
        return text[1:-1]
    if tok.kind == "string":
        return bytes(text[1:-1], "utf-8").decode("unicode_escape").encode("latin-1").decode("utf-8")
    if tok.kind == "char":
        return ord(bytes(text[1:-1], "utf-8").decode("unicode_escape"))
    clean = text.replace("_", "")
    if re.match(r"^[+-]?0[xX]", clean):
        return int(clean, 16)
    if re.match(r"^[+-]?\d+$", clean):
        return int(clean)
    return float(clean)


def _sort_key(key: Any) -> Any:
    return key.sort_key() if hasattr(key, "sort_key") else key


# ------------------------------------------------------------------------------------------------ values

def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, empty strings and collections are false."""
    if isinstance(value, _NoValue) or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


def go_print(value: Any) -> str:
    """``fmt.Sprint`` of a value: maps as ``map[k:v]``, slices as ``[a b]``, nil as ``<no value>``."""
    if value is None or isinstance(value, _NoValue):
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g") if value != int(value) or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_print(k)}:{go_print(value[k])}" for k in sorted(value, key=_sort_key)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    return str(value)


def _printf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the common verbs (%s %v %d %q %f %x %%)."""
    out, arg = [], iter(args)
    for m in re.finditer(r"%([-+ #0]*\d*(?:\.\d+)?)([svdqfxXtgeT%])|[^%]+|%", fmt):
        if not m.group(0).startswith("%") or m.group(0) == "%":
            out.append(m.group(0))
            continue
        flags, verb = m.group(1), m.group(2)
        if verb == "%":
            out.append("%")
            continue
        value = next(arg, _MISSING)
        if value is _MISSING:
            out.append(f"%!{verb}(MISSING)")
        elif verb in "svt":
            out.append(("%" + flags + "s") % go_print(value))
        elif verb == "q":
            out.append('"' + go_print(value).replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif verb == "T":
            out.append(type(value).__name__)
        else:
            out.append(("%" + flags + verb) % value)
    return "".join(out)


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        value = value.get(key, "") if isinstance(value, dict) else value[key]
    return value


def _eq(a: Any, *others: Any) -> bool:
    return any(a == b for b in others)


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: op(a, b)


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _trunc(n: int, s: str) -> str:
    return s[:n] if n >= 0 else s[n:]


def _indent(n: int, s: str) -> str:
    return "\n".join(" " * n + line for line in s.split("\n"))


def _default(default: Any, value: Any = None) -> Any:
    return value if truth(value) else default


def _uniq(items: list) -> list:
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


FUNCS: dict[str, Callable] = {
    # Go's builtins
    "and": _and, "or": _or, "not": lambda a: not truth(a), "len": lambda v: len(v),
    "index": _index, "slice": lambda v, *ix: v[slice(*ix)], "print": lambda *a: "".join(go_print(x) for x in a),
    "println": lambda *a: " ".join(go_print(x) for x in a) + "\n", "printf": _printf,
    "eq": _eq, "ne": lambda a, b: a != b, "lt": _cmp(lambda a, b: a < b), "le": _cmp(lambda a, b: a <= b),
    "gt": _cmp(lambda a, b: a > b), "ge": _cmp(lambda a, b: a >= b),
    # Sprig (hermetic, strings and lists)
    "upper": lambda s: go_print(s).upper(), "lower": lambda s: go_print(s).lower(),
    "title": lambda s: re.sub(r"\b[a-z]", lambda m: m.group(0).upper(), go_print(s)),
    "trim": lambda s: go_print(s).strip(), "trimAll": lambda cut, s: go_print(s).strip(cut),
    "trimPrefix": lambda p, s: go_print(s).removeprefix(p), "trimSuffix": lambda p, s: go_print(s).removesuffix(p),
    "replace": lambda old, new, s: go_print(s).replace(old, new),
    "contains": lambda sub, s: sub in go_print(s), "hasPrefix": lambda p, s: go_print(s).startswith(p),
    "hasSuffix": lambda p, s: go_print(s).endswith(p),
    "quote": lambda *a: " ".join('"' + go_print(x).replace('"', '\\"') + '"' for x in a),
    "squote": lambda *a: " ".join("'" + go_print(x) + "'" for x in a),
    "repeat": lambda n, s: go_print(s) * n, "trunc": _trunc, "nospace": lambda s: re.sub(r"\s", "", go_print(s)),
    "indent": _indent, "nindent": lambda n, s: "\n" + _indent(n, s),
    "default": _default, "empty": lambda v=None: not truth(v),
    "coalesce": lambda *a: next((x for x in a if truth(x)), None),
    "join": lambda sep, items: sep.join(go_print(x) for x in items),
    "split": lambda sep, s: {f"_{i}": part for i, part in enumerate(go_print(s).split(sep))},
    "splitList": lambda sep, s: go_print(s).split(sep),
    "list": lambda *a: list(a), "dict": lambda *a: {go_print(a[i]): a[i + 1] for i in range(0, len(a) - 1, 2)},
    "keys": lambda *maps: [k for m in maps for k in m], "sortAlpha": lambda items: sorted(go_print(x) for x in items),
    "uniq": _uniq, "first": lambda items: items[0] if items else None,
    "last": lambda items: items[-1] if items else None, "toString": go_print,
    "add": lambda *a: sum(int(x) for x in a), "sub": lambda a, b: int(a) - int(b),
    "mul": lambda *a: __import__("math").prod(int(x) for x in a), "div": lambda a, b: int(int(a) / int(b)),
    "mod": lambda a, b: int(a) % int(b), "max": lambda *a: max(int(x) for x in a),
    "min": lambda *a: min(int(x) for x in a),
}


def render(source: str, data: Any, name: str = "template", funcs: dict[str, Callable] | None = None) -> str:
    """Parse and execute ``source`` with ``data``; TemplateError on either."""
    return Template(source, name).execute(data, funcs)
