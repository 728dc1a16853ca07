"""The Jinja2 environment of the HTML pages (``report.html``, ``migration.html``).

The templates are package data in ``gpuseg/report/templates/``: the pages
(``report.html.j2`` and ``migration.html.j2`` on the layout ``base.html.j2``), their inline
style sheets and script, and in ``parts/`` the macros that write the sections. Python
shapes the data (numbers already formatted, rows chosen); the templates own the markup.

* Autoescaping is on, with the spelling of :func:`html.escape` (``&quot;``, ``&#x27;``),
  which the pages have always had: every ``{{ value }}`` that is not markup (a macro's
  output, or a :class:`markupsafe.Markup` that Python marked safe on purpose) is escaped.
  Template text itself is never escaped. Jinja's own escaping (the ``|e`` filter,
  ``|join`` and ``~`` where markup meets text, constant expressions such as
  ``{{ "it's" }}``) spells ``"`` and ``'`` differently, so the templates avoid those on text.
* An undefined name is an error (:class:`jinja2.StrictUndefined`).
* In ``parts/``, every line break in the template text, with the spaces and the blank
  lines around it, is left out: the markup is laid out for reading, and each section of
  the page comes out as one line. Where the page needs a space, the template keeps it on
  one line. The pages themselves (``trim_blocks`` and ``lstrip_blocks``: a line with only
  a ``{% ... %}`` tag leaves nothing) come out line by line as written.

This module imports jinja2; the report modules import it only when they render a page,
so that ``import gpuseg`` and the command line's start do not.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

import jinja2
from jinja2.ext import Extension
from markupsafe import Markup

__all__ = ["environment", "render"]

#: Template names that come out on one line (see the module's docstring).
ONE_LINE_PREFIX = "parts/"

# a Jinja tag, expression or comment (left as it is), or the text between them
_TAG = re.compile(r"(\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\})", re.S)
_BREAK = re.compile(r"\s*\n\s*")


def _comment_for(match: re.Match[str]) -> str:
    # a comment holding the same line breaks: nothing in the output, the same line numbers
    # in Jinja's error messages
    return "{#" + "\n" * match.group().count("\n") + "#}"


class _OneLine(Extension):
    """Leaves out the line breaks (and the spaces around them) of the text of the
    templates in ``parts/``."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if not (name or "").startswith(ONE_LINE_PREFIX):
            return source
        pieces = _TAG.split(source)
        # even pieces are text, odd ones tags
        return "".join(_BREAK.sub(_comment_for, p) if i % 2 == 0 else p for i, p in enumerate(pieces))


def _escape(value: Any) -> Any:
    """``{{ value }}``: markup as it is, anything else escaped as :func:`html.escape` does."""
    if hasattr(value, "__html__"):
        return value
    return Markup(html.escape(str(value), quote=True))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The environment (made once) that loads the templates from the package."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gpuseg.report", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=[_OneLine],
    )


def render(name: str, **context: Any) -> str:
    """The text of the template ``name`` with ``context``."""
    return environment().get_template(name).render(**context)
