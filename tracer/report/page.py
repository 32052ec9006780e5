"""The parts of a self-contained k3sprof HTML page that the report and the comparison share:
plotly figure layout and embedding, the JSON payload, the page's CSS and the script that builds
tables from the payload (textContent only: recorded strings can never become markup)."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any, TypedDict

import plotly.graph_objects as go


class TableDict(TypedDict):
    columns: list[str]
    align: str  # one letter per column: "l" text, "r" number
    rows: list[list[str]]
    note: str


def esc(s: object) -> str:
    """Text for a plotly label (plotly renders a subset of HTML in labels and hovers)."""
    return html.escape(str(s), quote=True)


def layout(height: int, **extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 30, "b": 40},
        "hoverlabel": {"align": "left", "font": {"family": "monospace", "size": 11}},
        "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
        "xaxis": {"title": {"text": "seconds since recording started"}, "zeroline": False},
        "font": {"size": 11},
    }
    layout.update(extra)
    return layout


def figure_html(fig: go.Figure, div_id: str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


def empty_figure(div_id: str, message: str) -> str:
    fig = go.Figure(
        layout=layout(
            120,
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[
                {
                    "text": esc(message),
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                }
            ],
        )
    )
    return figure_html(fig, div_id)


def payload_json(payload: Mapping[str, Any]) -> str:
    """JSON safe inside <script>: sorted keys, and no '<', '>' or '&' that HTML could parse."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#e3e3e3;--warn-bg:#fff4e5;--warn:#8a4b00}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0;background:#fafafa}
main{max-width:1340px;margin:0 auto;padding:12px 16px 40px}
h1{font-size:20px;margin:4px 0 8px}h2{font-size:16px;margin:0 0 4px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 14px;
margin:12px 0}
nav a{margin-right:14px;color:#1f4e9c;text-decoration:none}
.help{color:var(--muted);margin:0 0 8px;font-size:13px}
#facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:2px 18px;
font-size:13px}
#facts div{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#facts b{color:var(--muted);font-weight:500;margin-right:6px}
#warnings div{background:var(--warn-bg);color:var(--warn);border-left:4px solid #f0a030;
padding:6px 10px;margin:6px 0;font-weight:600}
#headline p{margin:2px 0}#headline p:first-child{font-size:16px;font-weight:600}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;width:100%}
[data-table=composition] table,[data-table^=path_by] table{width:auto;min-width:420px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}td.r,th.r{text-align:right;white-space:nowrap}
td{word-break:break-word}td:first-child{white-space:nowrap}
.note{color:var(--muted);font-size:12px}
footer{color:var(--muted);font-size:12px;margin-top:20px}
"""

# Builds the header and tables from the JSON payload. textContent only: recorded strings
# (process names, argv, endpoints) can never become markup.
JS = """
(function(){
"use strict";
var data=JSON.parse(document.getElementById("k3sprof-data").textContent);
function el(tag,cls,text){var e=document.createElement(tag);if(cls){e.className=cls;}
if(text!==undefined){e.textContent=text;}return e;}
document.title=data.title;
document.getElementById("title").textContent=data.title;
var facts=document.getElementById("facts");
data.facts.forEach(function(f){var d=el("div");d.appendChild(el("b","",f[0]));
d.appendChild(document.createTextNode(f[1]));d.title=f[0]+": "+f[1];facts.appendChild(d);});
var warn=document.getElementById("warnings");
data.warnings.forEach(function(w){warn.appendChild(el("div","","\\u26a0 "+w));});
var head=document.getElementById("headline");
data.headline.forEach(function(h){head.appendChild(el("p","",h));});
document.querySelectorAll("[data-table]").forEach(function(box){
  var t=data.tables[box.getAttribute("data-table")];
  if(!t.rows.length){box.appendChild(el("p","note","none found"));return;}
  var table=el("table"),tr=el("tr");
  t.columns.forEach(function(c,i){tr.appendChild(el("th",t.align[i]==="r"?"r":"",c));});
  var thead=el("thead");thead.appendChild(tr);table.appendChild(thead);
  var tbody=el("tbody");
  t.rows.forEach(function(r){var row=el("tr");
    r.forEach(function(c,i){row.appendChild(el("td",t.align[i]==="r"?"r":"",c));});
    tbody.appendChild(row);});
  table.appendChild(tbody);box.appendChild(table);
  if(t.note){box.appendChild(el("p","note",t.note));}
});
})();
"""


def section(anchor: str, title: str, help_text: str, body: str) -> str:
    return (
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>'
        f'<p class="help">{html.escape(help_text)}</p>{body}</section>\n'
    )


def table_box(name: str) -> str:
    return f'<div class="scroll" data-table="{name}"></div>'
