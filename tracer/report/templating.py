"""The Jinja environment every HTML page of k3sprof is rendered with (tracer/report/templates/).

Autoescaping is on for every template: a value reaches the page escaped unless the code that
made it marks it safe, and only two kinds of value are: HTML that plotly generated for a figure
(its labels were escaped before plotly saw them, tracer/report/page.py ``esc``) and the page's
own static assets (CSS, JS, plotly.js). Data for the page's script goes through ``|tojson``,
whose output is safe inside ``<script>`` (``<``, ``>``, ``&`` and ``'`` become ``\\u00XX``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from markupsafe import Markup

from tracer import __version__
from tracer.report.page import CSS, JS


@cache
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tracer.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    # the payload's JSON: sorted keys and compact, so two runs diff cleanly and stay small
    env.policies["json.dumps_kwargs"] = {
        "sort_keys": True, "separators": (",", ":"), "ensure_ascii": True, "allow_nan": False,
    }
    return env


@cache
def _plotly_js() -> Markup:
    import plotly.offline

    return Markup(plotly.offline.get_plotlyjs())


def render_page(template: str, *, figures: Mapping[str, str], **context: Any) -> str:
    """A whole page: `figures` (anchor -> plotly html) are trusted, everything else escaped."""
    return str(environment().get_template(template).render(
        css=Markup(CSS),
        js=Markup(JS),
        plotly_js=_plotly_js(),
        version=__version__,
        figures={k: Markup(v) for k, v in figures.items()},
        **context,
    ))
