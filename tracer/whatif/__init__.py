"""What if: the startup recomputed from its recorded wait-for graph with changes applied.

A consumer of :class:`~tracer.analyzer.model.Analysis` (a floor above the analyzer, like the
report): ``predict(analysis, ["poll:127.0.0.1:6443=40ms"])`` and ``suggest(analysis)``
(tracer/whatif/engine.py); ``to_json`` / ``render_text`` are the `k3sprof whatif` output
(docs/whatif.md).
"""

from __future__ import annotations

from tracer.whatif.changes import Change, parse
from tracer.whatif.engine import Prediction, Suggestion, predict, suggest
from tracer.whatif.render import render_text, to_json

__all__ = ["Change", "Prediction", "Suggestion", "parse", "predict", "render_text", "suggest",
           "to_json"]
