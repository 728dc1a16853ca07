"""The Jinja2 templates of the HTML pages: all shipped, escaped as html.escape does, and
jinja2 imported only when a page is rendered."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

jinja2 = pytest.importorskip("jinja2")

from gpuseg.report import html as report  # noqa: E402
from gpuseg.report import templating  # noqa: E402

PACKAGE = Path(report.__file__).parent
TEMPLATES = PACKAGE / "templates"
HOSTILE_ID = "\"'><script>alert('id')</script>"
HOSTILE_NAME = "<script>alert(\"name\")</script> & 'quoted' \"name\""


def template_files() -> set[str]:
    return {p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_every_template_loads_from_the_package():
    env = templating.environment()
    names = set(env.list_templates())
    assert {"base.html.j2", "report.html.j2", "migration.html.j2", "report.css", "report.js",
            "migration.css"} <= names
    assert names == template_files()
    for name in names:
        env.get_template(name)


def test_package_data_ships_every_template():
    """pyproject.toml's package-data globs (what setuptools puts in the wheel) cover every
    file in templates/."""
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    globs = meta["tool"]["setuptools"]["package-data"]["gpuseg.report"]
    shipped = {p.relative_to(TEMPLATES).as_posix() for g in globs for p in PACKAGE.glob(g)}
    assert template_files() - shipped == set()


def test_text_is_escaped_as_html_escape_does_and_parts_are_one_line():
    table = templating.environment().get_template("parts/macros.html.j2").module.text_table
    text = str(table(["a <b>"], [["<x> & y", "it's \"q\""]], "small", ["chosen"]))
    assert text == ('<div class="scroll"><table class="small"><thead><tr><th>a &lt;b&gt;</th></tr></thead><tbody>'
                    '<tr class="chosen"><td>&lt;x&gt; &amp; y</td><td>it&#x27;s &quot;q&quot;</td></tr></tbody>'
                    "</table></div>")


def test_an_undefined_name_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        templating.render("report.html.j2", title="t")


def test_start_up_does_not_import_jinja2():
    code = ("import sys, gpuseg, gpuseg.cli, gpuseg.pipeline, gpuseg.report.html, gpuseg.report.migration;"
            "print([m for m in ('jinja2', 'markupsafe') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory, small_run, copy_run):
    out = copy_run(small_run, tmp_path_factory.mktemp("hostile") / "out", HOSTILE_ID)
    insights = {"segments": [{"segment": 0, "name": HOSTILE_NAME, "persona": HOSTILE_NAME,
                              "actions": [{"kind": "<k>", "text": HOSTILE_NAME}]}]}
    return report.report_html(out, insights, plots={})


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []

    def handle_data(self, data):
        self.texts.append(data)


def test_no_template_syntax_reaches_the_page(hostile_page):
    # the one-line preprocessing of parts/ turns line breaks into comments: none may survive
    for marker in ("{#", "{%", "{{"):  # ("%}" is CSS: "width:1%}")
        assert marker not in hostile_page


def test_hostile_segment_name_and_customer_id_are_escaped(hostile_page):
    page = hostile_page
    assert HOSTILE_NAME not in page and HOSTILE_ID not in page
    assert page.count("<script") == 2  # the lookup's data and the page's own script
    assert html.escape(HOSTILE_NAME, quote=True) in page  # &quot; and &#x27;, as html.escape writes them
    card = re.search(r'<article class="card" id="segment-0">(.*?)</article>', page, re.S).group(1)
    parser = _Text()
    parser.feed(card)
    assert HOSTILE_NAME in parser.texts  # the name itself, after the browser's unescaping
    data = json.loads(re.search(r'<script type="application/json" id="lookup-data">(.*?)</script>', page,
                                re.S).group(1))
    assert data["ids"][0] == HOSTILE_ID and data["names"]["0"] == HOSTILE_NAME
