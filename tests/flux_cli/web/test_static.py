"""The web UI's static front end (flux_cli/web/static/): present, within the page-weight budget, no external
URL (CSP `default-src 'self'`, no CDN), no inline script or style in index.html, and every relative ES-module
import resolving to a file that exports the imported names. Pure file checks: no server, no browser."""
from __future__ import annotations

import gzip
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT_DIR = Path(__file__).resolve().parents[3]
STATIC = ROOT_DIR / "flux_cli" / "web" / "static"
REQUIRED = ["index.html", "app.css", "app.js", "api.js", "layout.js", "graph.js", "object.js"]
SERVED = {".html", ".css", ".js", ".svg"}          # what the server knows a Content-Type for
#: raw, and gzipped (sum per file). The gzip budget was 20 KB until the shared stream (stream.js) took it past.
RAW_BUDGET, GZIP_BUDGET = 60_000, 24_000
SVG_NS = "http://www.w3.org/2000/svg"              # an XML namespace name, never fetched

FILES = sorted(p for p in STATIC.rglob("*") if p.is_file()) if STATIC.is_dir() else []
JS = [p for p in FILES if p.suffix == ".js"]


def test_required_files_exist():
    assert STATIC.is_dir(), STATIC
    missing = [name for name in REQUIRED if not (STATIC / name).is_file()]
    assert not missing, missing


def test_only_servable_files():
    odd = [p.name for p in FILES if p.suffix not in SERVED]
    assert not odd, f"the server has no Content-Type for {odd}"


def test_page_weight_budget():
    raw = sum(p.stat().st_size for p in FILES)
    zipped = sum(len(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0)) for p in FILES)
    assert raw <= RAW_BUDGET, f"static/ is {raw} bytes, budget {RAW_BUDGET}"
    assert zipped <= GZIP_BUDGET, f"static/ is {zipped} bytes gzipped (sum per file), budget {GZIP_BUDGET}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_external_url(path: Path):
    text = path.read_text(encoding="utf-8").replace(SVG_NS, "")
    assert not re.search(r"https?://", text, re.I), f"{path.name} names an external URL"
    if path.suffix == ".css":
        assert "@import" not in text
        assert not re.search(r"url\(\s*['\"]?(?!#)", text), f"{path.name}: url() may only name a fragment"


class _Index(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.script_text: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in in ("script", "style") and data.strip():
            self.script_text.append(f"<{self._in}>{data.strip()[:40]}")


def _index() -> _Index:
    parser = _Index()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return parser


def test_index_has_no_inline_script_or_style():
    index = _index()
    assert not index.script_text, index.script_text
    assert not any(tag == "style" for tag, _ in index.tags)
    for tag, attrs in index.tags:
        assert "style" not in attrs, f"<{tag} style=…>"
        handlers = [a for a in attrs if a.startswith("on")]
        assert not handlers, f"<{tag}> has inline handlers {handlers}"
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/") and attrs.get("type") == "module", attrs


def test_index_references_only_static_paths():
    for tag, attrs in _index().tags:
        for name in ("src", "href", "action", "data", "poster"):
            value = attrs.get(name)
            if value is None:
                continue
            if tag == "a" and name == "href":
                assert value.startswith("#"), f"<a href={value!r}>: links stay in the page (#/...)"
            else:
                assert value.startswith("/static/"), f"<{tag} {name}={value!r}>"
                assert (STATIC / value[len("/static/"):]).is_file(), value


def test_index_carries_the_token_placeholder():
    metas = [attrs for tag, attrs in _index().tags if tag == "meta" and attrs.get("name") == "fluxpy-token"]
    assert metas and metas[0].get("content") == "{{TOKEN}}"
    assert (STATIC / "index.html").read_text(encoding="utf-8").count("{{TOKEN}}") == 1


IMPORT = re.compile(r"""import\s*(?:\{([^}]*)\}\s*from\s*|[\w*\s,]+from\s*)?['"]([^'"]+)['"]""")
DYNAMIC = re.compile(r"""import\(\s*['"]([^'"]+)['"]\s*\)""")


def _exports(text: str) -> set[str]:
    names = set(re.findall(r"export\s+(?:async\s+)?(?:function\*?|const|let|var|class)\s+([\w$]+)", text))
    for group in re.findall(r"export\s*\{([^}]*)\}", text):
        names |= {part.split(" as ")[-1].strip() for part in group.split(",") if part.strip()}
    for group in re.findall(r"export\s+(?:const|let|var)\s+([\w$]+\s*=[^;]*?,\s*[\w$]+\s*=)", text):
        names |= set(re.findall(r"([\w$]+)\s*=", group))
    return names


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_imports_resolve(path: Path):
    text = path.read_text(encoding="utf-8")
    for names, target in IMPORT.findall(text):
        assert target.startswith("./"), f"{path.name}: import {target!r} is not a relative module"
        module = path.parent / target
        assert module.is_file(), f"{path.name}: {target} does not exist"
        exported = _exports(module.read_text(encoding="utf-8"))
        for name in (n.split(" as ")[0].strip() for n in names.split(",") if n.strip()):
            assert name in exported, f"{path.name} imports {name} from {target}, which does not export it"
    for target in DYNAMIC.findall(text):
        assert target.startswith(("./", "/static/")), target


@pytest.mark.parametrize("path", JS, ids=lambda p: p.name)
def test_no_html_injection_or_eval(path: Path):
    """Names and messages come from the cluster: they go in as text, never as markup or code."""
    text = path.read_text(encoding="utf-8")
    for pattern in (r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"document\.write", r"\beval\(",
                    r"new Function\("):
        assert not re.search(pattern, text), f"{path.name} uses {pattern}"


def test_element_ids_used_by_the_scripts_exist():
    """Every `$('#id')` names an id that index.html or a script (`id: '…'`) creates."""
    made = set(re.findall(r'\bid="([\w-]+)"', (STATIC / "index.html").read_text(encoding="utf-8")))
    sources = [p.read_text(encoding="utf-8") for p in JS]
    for text in sources:
        made |= set(re.findall(r"\bid:\s*'([\w-]+)'", text))
    used = {m for text in sources for m in re.findall(r"""\$\(\s*['"]#([\w-]+)['"]\s*\)""", text)}
    assert used and used <= made, sorted(used - made)


def test_the_package_build_carries_the_assets(tmp_path):
    """The page is package data: setuptools' build of this tree (what a wheel is made of) holds every file
    of static/."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib",
                    str(tmp_path)], cwd=ROOT_DIR, check=True, timeout=300, capture_output=True)
    built = {p.name for p in (tmp_path / "flux_cli" / "web" / "static").iterdir()}
    assert built == {p.name for p in STATIC.iterdir()}
