"""The extracted source tree as kustomize sees it: kustomization files, paths confined to the root, remote
references, and YAML read and written the way Flux's Go libraries do.

- :func:`secure_join` (``controllers.lib.archive``'s, re-exported) resolves a path inside the root as
  Flux's securejoin does: ``..`` and symlinks never leave it (they are clamped to it).
- :func:`kustomizations` walks a kustomization and the local directories its ``resources``/``components``
  name; :func:`file_references` and :func:`plugin_references` list every path one kustomization (and its
  generator/transformer configurations) makes kustomize read.
- :func:`load_documents` parses YAML as Kubernetes' ``YAMLToJSON`` (go-yaml v2) types it: YAML 1.1 booleans
  including ``y``/``n``, octal ``0777``, ``_`` in numbers, timestamps turned into RFC 3339 strings, integral
  floats as ints, map keys as strings. :func:`yaml_error` renders a parse error as ``yaml: line N: ...``.
- :func:`dump_go_yaml` writes an object as sigs.k8s.io/yaml's Marshal does (key order, quoting, folding),
  which is what ``flux build`` prints; :func:`dump_document` is a plain dump for files kustomize reads.
"""
from __future__ import annotations

import datetime
import functools
import os
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from controllers.lib.archive import secure_join  # noqa: F401 - re-exported: build and decrypt use it

#: The file names kustomize recognises, in its order of preference.
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


# ----------------------------------------------------------------------------------------------- paths

def inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path`` (symlinks resolved) is ``root`` or below it."""
    root, path = os.path.realpath(root), os.path.realpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def relative(root: str | os.PathLike, path: str | os.PathLike) -> str:
    """``path`` relative to ``root`` for messages (``.`` for the root itself)."""
    return os.path.relpath(os.path.realpath(path), os.path.realpath(root))


def is_remote(reference: str) -> bool:
    """Whether a kustomization entry names something kustomize fetches over the network: a Git repository
    (``github.com/org/repo``, ``git@...``, ``https://...git``, ``...?ref=``) or an HTTP(S) file."""
    lowered = reference.lower()
    if re.match(r"^[a-z][a-z0-9+.-]*://", lowered) or "?ref=" in lowered or "?version=" in lowered:
        return True
    return lowered.startswith(("git::", "gh:", "git@", "github.com:", "github.com/", "gitlab.com/",
                               "bitbucket.org/"))


def is_local_relative(path: str) -> bool:
    """Flux's rule for ``spec.components``: not a URL-like reference and not absolute."""
    lowered = path.lower()
    for prefix in ("git::", "gh:", "ssh://", "https://", "http://", "git@", "github.com:", "github.com/"):
        if len(prefix) < len(path) and lowered.startswith(prefix):
            return False
    return not (path.startswith("/") or lowered.removeprefix("file://").startswith("/"))


# ----------------------------------------------------------------------------------------------- kustomization files

def kustomization_file(directory: str | os.PathLike) -> Path | None:
    """The kustomization file of a directory (the first recognised name that is not a directory)."""
    for name in KUSTOMIZATION_FILES:
        candidate = Path(directory) / name
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def read_kustomization(path: Path, root: str | os.PathLike) -> dict:
    """A kustomization file as a dict; ValueError naming the file (and line) when it is not a YAML mapping."""
    try:
        docs = load_documents(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"failed to read {relative(root, path)}: {yaml_error(exc)}") from None
    doc = docs[0] if docs else {}
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"failed to read {relative(root, path)}: not a kustomization (a YAML mapping)")
    return doc


def kustomizations(root: str | os.PathLike, start: str | os.PathLike, *,
                   follow: tuple[str, ...] = ("resources", "components", "bases")) -> Iterator[tuple[Path, Path, dict]]:
    """``(directory, file, content)`` of the kustomization in ``start`` and, depth first, of every local
    directory its ``follow`` fields name (each once). Remote entries and files are skipped; a named directory
    without a kustomization file is skipped too (kustomize reports it)."""
    seen: set[str] = set()
    stack = [Path(start)]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen or not os.path.isdir(real) or not inside(root, real):
            continue
        seen.add(real)
        kfile = kustomization_file(directory)
        if kfile is None:
            continue
        content = read_kustomization(kfile, root)
        yield Path(real), kfile, content
        children = []
        for field in follow:
            for entry in _strings(content.get(field)):
                if not is_remote(entry):
                    children.append(Path(real) / entry)
        stack.extend(reversed(children))


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def file_references(content: dict) -> Iterator[tuple[str, str]]:
    """``(field, path)`` for every path a kustomization file makes kustomize read (files, directories or
    URLs; inline patches and configurations are not paths and are left out)."""
    for field in ("resources", "components", "bases", "crds", "configurations", "generators", "transformers",
                  "validators"):
        for entry in _strings(content.get(field)):
            if "\n" not in entry:
                yield field, entry
    for entry in _strings(content.get("patchesStrategicMerge")):
        if "\n" not in entry:
            yield "patchesStrategicMerge", entry
    for field in ("patches", "patchesJson6902", "replacements"):
        for item in content.get(field) or []:
            if isinstance(item, dict) and isinstance(item.get("path"), str):
                yield field, item["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in content.get(field) or []:
            if not isinstance(generator, dict):
                continue
            for source in _strings(generator.get("files")):
                yield field, source.split("=", 1)[-1]
            for source in _strings(generator.get("envs")):
                yield field, source
            if isinstance(generator.get("env"), str):
                yield field, generator["env"]
    openapi = content.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi", openapi["path"]


#: Fields of kustomize's builtin plugin configurations (generators, transformers) that name files.
_PLUGIN_PATH_FIELDS = ("path", "files", "envs", "env", "valuesFile", "additionalValuesFiles", "chartHome")


def plugin_references(root: str | os.PathLike, directory: Path, content: dict) -> Iterator[tuple[str, str]]:
    """``(field, path)`` for the files that the plugin configurations of the kustomization in ``directory``
    (``generators``, ``transformers``, ``validators``: files inside ``root``, or inline YAML) make kustomize
    read, relative to ``directory``."""
    for field in ("generators", "transformers", "validators"):
        for entry in _strings(content.get(field)):
            if "\n" in entry:
                text = entry
            else:
                config = directory / entry
                if not config.is_file() or not inside(root, config):
                    continue
                try:
                    text = config.read_text(errors="replace")
                except OSError:
                    continue
            try:
                documents = list(yaml.safe_load_all(text))
            except yaml.YAMLError:
                continue  # kustomize reports it
            for doc in documents:
                for path in _named_paths(doc):
                    yield field, path


def _named_paths(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _PLUGIN_PATH_FIELDS:
                for path in ([item] if isinstance(item, str) else _strings(item)):
                    yield path.split("=", 1)[-1] if key == "files" else path
            elif isinstance(item, (dict, list)):
                yield from _named_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from _named_paths(item)


# ----------------------------------------------------------------------------------------------- YAML

class _GoYAMLLoader(yaml.SafeLoader):
    """PyYAML with go-yaml v2's typing of plain scalars (see :func:`go_scalar`)."""


_GoYAMLLoader.yaml_implicit_resolvers = {
    "<": [("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"))],
}


def _construct_str(loader: _GoYAMLLoader, node: yaml.ScalarNode) -> Any:
    value = loader.construct_scalar(node)
    return go_scalar(value) if node.style is None else value


def _construct_mapping(loader: _GoYAMLLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    result: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[_json_key(key)] = loader.construct_object(value_node, deep=True)
    return result


_GoYAMLLoader.add_constructor("tag:yaml.org,2002:str", _construct_str)
_GoYAMLLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _json_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str):
        return key
    if key is None:
        raise yaml.YAMLError("unsupported map key of type: nil")
    return str(key)


_GO_SPECIAL = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
}
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_TIMESTAMP = re.compile(
    r"^(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})"
    r"(?:(?:(?P<t>[Tt])|(?P<space> ))(?P<hour>\d{1,2}):(?P<minute>\d{1,2}):(?P<second>\d{1,2})"
    r"(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d{2}:\d{2})?)?$")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def go_scalar(text: str) -> Any:
    """The JSON value go-yaml v2 + YAMLToJSON give a plain scalar: bool/null words, ints (decimal, 0x, 0o,
    0b, leading-zero octal, ``_`` separators), floats (integral ones as ints, as a JSON round trip does),
    timestamps as RFC 3339 strings; anything else is the string itself."""
    if text in _GO_SPECIAL:
        return _GO_SPECIAL[text]
    first = text[:1]
    if first == ".":
        return _number(text) if _GO_FLOAT.match(text) else text
    if not first or first not in "+-0123456789":
        return text
    stamp = _go_timestamp(text)
    if stamp is not None:
        return stamp
    plain = text.replace("_", "")
    integer = _go_int(plain)
    if integer is not None:
        return integer
    if _GO_FLOAT.match(plain):
        return _number(plain)
    return text


def _number(text: str) -> int | float | str:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return text  # out of range: Go's ParseFloat fails and the scalar stays a string
    if value.is_integer() and _INT64[0] <= value <= _INT64[1]:
        return int(value)
    return value


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), falling back to ParseUint."""
    match = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", text)
    if not match:
        return None
    sign, digits = match.groups()
    lowered = digits.lower()
    if lowered.startswith(("0x", "0o", "0b")):
        value = int(lowered[2:], {"x": 16, "o": 8, "b": 2}[lowered[1]])
    elif digits.startswith("0") and len(digits) > 1:
        value = int(digits[1:], 8)
    else:
        value = int(digits)
    value = -value if sign == "-" else value
    if _INT64[0] <= value <= _INT64[1] or (sign != "-" and value < (1 << 64)):
        return value
    return None


def _go_timestamp(text: str) -> str | None:
    match = _GO_TIMESTAMP.match(text)
    if not match:
        return None
    year, month, day = (int(match.group(g)) for g in ("year", "month", "day"))
    has_time = match.group("hour") is not None
    if has_time and match.group("space") and match.group("zone"):
        return None  # "2006-1-2 15:4:5" takes no zone
    if has_time and match.group("t") and not match.group("zone"):
        return None  # the T forms need one
    hour, minute, second = (int(match.group(g)) for g in ("hour", "minute", "second")) if has_time else (0, 0, 0)
    fraction = match.group("fraction") or ""
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    zone = match.group("zone") or "Z"
    fraction = fraction[:9].rstrip("0")
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            f"{'.' + fraction if fraction else ''}{'Z' if zone in ('Z', '+00:00', '-00:00') else zone}")


def load_documents(text: str) -> list[Any]:
    """The documents of a YAML stream, typed as Kubernetes' YAML decoding types them (empty ones kept as
    None). Raises yaml.YAMLError."""
    return list(yaml.load_all(text, Loader=_GoYAMLLoader))


def yaml_error(exc: yaml.YAMLError) -> str:
    """``yaml: line N: problem`` (Go's wording) for a PyYAML error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context and problem else problem
    return f"yaml: line {mark.line + 1}: {detail}" if mark is not None else f"yaml: {detail}"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)


def dump_document(obj: Any, *, sort_keys: bool = False) -> str:
    """One YAML document, no line folding, multi-line strings as literal blocks."""
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=sort_keys, default_flow_style=False, width=1 << 30,
                     allow_unicode=True)


# --- sigs.k8s.io/yaml's Marshal (go-yaml v2), the format `flux build` prints

_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_TAG_OF = {bool: "tag:yaml.org,2002:bool", int: "tag:yaml.org,2002:int", float: "tag:yaml.org,2002:float",
           type(None): "tag:yaml.org,2002:null"}


def _plain_is_string(text: str) -> bool:
    """Whether go-yaml v2 writes this string unquoted (it would read back as the same string)."""
    return isinstance(go_scalar(text), str) and go_scalar(text) == text and not _BASE60.match(text)


class _GoDumper(yaml.SafeDumper):
    """PyYAML's emitter (the libyaml algorithm go-yaml v2 also ports) with go-yaml v2's choices: its
    implicit typing, double quotes for strings that would read back as another type, literal blocks for
    multi-line strings, 80-column folding."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        """libyaml's double-quoted writer as go-yaml v2 has it: folds only at a single space once past the
        width, escapes what is not printable in its sense (tabs, characters beyond U+FFFF, ...)."""
        self.write_indicator('"', True)
        spaces = False
        i = 0
        while i < len(text):
            ch = text[i]
            if not _go_printable(ch) or ch in '"\\\n\r\x85\u2028\u2029':
                self._write_raw("\\" + _go_escape(ch))
                spaces = False
            elif ch == " ":
                if split and not spaces and self.column > self.best_width and 0 < i < len(text) - 1:
                    self.write_indent()
                    if text[i + 1] == " ":
                        self._write_raw("\\")
                else:
                    self._write_raw(ch)
                spaces = True
            else:
                self._write_raw(ch)
                spaces = False
            i += 1
        self.write_indicator('"', False)

    def write_literal(self, text: str) -> None:
        super().write_literal(text)
        self.open_ended = False  # go-yaml ends the document without "..."

    def _write_raw(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data.encode(self.encoding) if self.encoding else data)

    def resolve(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0]:
            if _BASE60.match(value):
                return "tag:yaml.org,2002:base60"
            typed = go_scalar(value)
            if isinstance(typed, str) and typed == value:
                return "tag:yaml.org,2002:str"
            return _TAG_OF.get(type(typed), "tag:yaml.org,2002:timestamp")
        return super().resolve(kind, value, implicit)


def _go_printable(ch: str) -> bool:
    code = ord(ch)
    return (code == 0x0A or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
            or (0xE000 <= code <= 0xFFFD and code != 0xFEFF))


_GO_ESCAPES = {0x00: "0", 0x07: "a", 0x08: "b", 0x09: "t", 0x0A: "n", 0x0B: "v", 0x0C: "f", 0x0D: "r", 0x1B: "e",
               0x22: '"', 0x5C: "\\", 0x85: "N", 0xA0: "_", 0x2028: "L", 0x2029: "P"}


def _go_escape(ch: str) -> str:
    code = ord(ch)
    if code in _GO_ESCAPES:
        return _GO_ESCAPES[code]
    if code <= 0xFF:
        return f"x{code:02X}"
    return f"u{code:04X}" if code <= 0xFFFF else f"U{code:08X}"


def _go_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else (None if _plain_is_string(value) else '"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _go_float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    text = ".nan" if value != value else (".inf" if value == float("inf") else
                                          "-.inf" if value == float("-inf") else repr(value))
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_GoDumper.add_representer(str, _go_str)
_GoDumper.add_representer(float, _go_float)


def _go_key_cmp(a: str, b: str) -> int:
    """go-yaml v2's "natural" ordering of map keys: letters before other characters, digit runs by value."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return -1 if a[i] < b[i] else 1
        if a_letter or b_letter:
            return 1 if a_letter else -1
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            a_num = a_num * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            b_num = b_num * 10 + int(b[bi])
            bi += 1
        if a_num != b_num:
            return -1 if a_num < b_num else 1
        if ai != bi:
            return -1 if ai < bi else 1
        return -1 if a[i] < b[i] else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def _go_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        if len(keys) <= 12:  # Go's sort.Sort uses insertion sort here, which matters as the order is not total
            for i in range(1, len(keys)):
                j = i
                while j > 0 and _go_key_cmp(keys[j], keys[j - 1]) < 0:
                    keys[j], keys[j - 1] = keys[j - 1], keys[j]
                    j -= 1
        else:
            keys.sort(key=functools.cmp_to_key(_go_key_cmp))
        return {k: _go_sorted(value[k]) for k in keys}
    if isinstance(value, list):
        return [_go_sorted(v) for v in value]
    return value


def dump_go_yaml(obj: Any) -> str:
    """``obj`` as sigs.k8s.io/yaml's Marshal writes it (what ``flux build`` prints for each object)."""
    return yaml.dump(_go_sorted(obj), Dumper=_GoDumper, sort_keys=False, default_flow_style=False, width=80,
                     allow_unicode=True)
