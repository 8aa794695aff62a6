"""Go text/template semantics that commit-message templates rely on (expected outputs are Go's)."""
import dataclasses

import pytest

from controllers.lib.gotemplate import Template, TemplateError, render


@dataclasses.dataclass
class Image:
    Repository: str
    Tag: str

    def __str__(self) -> str:
        return f"{self.Repository}:{self.Tag}"


@pytest.mark.parametrize("source, data, expected", [
    ("plain text", {}, "plain text"),
    ("{{ .a }}-{{ .missing }}", {"a": 1}, "1-<no value>"),
    ("a  {{- .x -}}  b", {"x": "X"}, "aXb"),
    ("{{/* a comment */}}x", {}, "x"),
    ("{{ if .on }}yes{{ else if .other }}other{{ else }}no{{ end }}", {"on": False, "other": 1}, "other"),
    ("{{ range $k, $v := .m }}{{ $k }}={{ $v }};{{ end }}", {"m": {"b": 2, "a": 1}}, "a=1;b=2;"),
    ("{{ range .xs }}{{ . }}{{ else }}empty{{ end }}", {"xs": []}, "empty"),
    ("{{ range $i, $x := .xs }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $x }}{{ end }}", {"xs": list("abcd")}, "ab"),
    ("{{ with .img }}{{ .Repository }}{{ end }}", {"img": Image("r", "t")}, "r"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", {}, "2"),
    ("{{ .img }}", {"img": Image("ghcr.io/a", "1.0")}, "ghcr.io/a:1.0"),
    ('{{ printf "%s has %d files" .name (len .files) }}', {"name": "n", "files": [1, 2]}, "n has 2 files"),
    ('{{ "Hello" | upper | printf "%q" }}', {}, '"HELLO"'),
    ("{{ .s | trunc 3 }}|{{ .s | title }}|{{ .s | replace \"o\" \"0\" }}", {"s": "foo bar"}, "foo|Foo Bar|f00 bar"),
    ('{{ join ", " (list "a" "b") }}', {}, "a, b"),
    ('{{ default "none" .missing }}', {}, "none"),
    ("{{ index .m \"k\" }}", {"m": {"k": "v"}}, "v"),
    ("{{ and 1 0 }} {{ or 0 \"\" 3 }} {{ not 0 }}", {}, "0 3 true"),
    ("{{ lt 1 2 }} {{ ne \"a\" \"b\" }}", {}, "true true"),
])
def test_renders_like_go(source, data, expected):
    assert render(source, data) == expected


def test_missing_struct_field_is_goes_error():
    with pytest.raises(TemplateError, match="can't evaluate field Nope"):
        render("{{ .img.Nope }}", {"img": Image("r", "t")})


@pytest.mark.parametrize("source, message", [
    ("{{ if .x }}unterminated", "unexpected EOF"),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ nosuchfunc 1 }}", 'function "nosuchfunc" not defined'),
    ('{{ define "x" }}{{ end }}', "not supported"),
])
def test_parse_errors_name_the_template_and_line(source, message):
    with pytest.raises(TemplateError) as err:
        Template("line one\n" + source, "commit message").execute({})
    assert str(err.value).startswith("template: commit message:")
    assert message in str(err.value)
