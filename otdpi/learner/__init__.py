"""Per-device behaviour learning: mergeable baselines, scored alerts, ATT&CK mapping.

* :class:`Baseline` is the learned state (mergeable, JSON-serialisable);
* :class:`Detector` learns, then scores Messages with the models of
  :data:`MODELS` and keeps learning;
* :class:`Store` keeps baselines and alerts in an SQLite file;
* :func:`feed_captures` runs captures through the engine into a detector.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import importlib

# Names load with their module on first use (PEP 562), so that the CLI, which
# names DEFAULT_DB while building its parser, does not load the learner.
_LAZY = {
    "Baseline": "otdpi.learner.baseline",
    "Detector": "otdpi.learner.detector",
    "connection_event": "otdpi.learner.detector",
    "is_external": "otdpi.learner.detector",
    "MODELS": "otdpi.learner.models",
    "TECHNIQUES": "otdpi.learner.models",
    "Model": "otdpi.learner.models",
    "Technique": "otdpi.learner.models",
    "Store": "otdpi.learner.store",
    "export_json": "otdpi.learner.store",
    "import_json": "otdpi.learner.store",
}
DEFAULT_DB = "otdpi.sqlite"

# The compiled learner, where it is built and up to date, else the same
# modules from their sources (see otdpi/learner/_implementation.py).
from otdpi.learner._implementation import choose as _choose, compiled  # noqa: E402

_choose()


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otdpi.learner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

__all__ = [
    "DEFAULT_DB",
    "MODELS",
    "TECHNIQUES",
    "Baseline",
    "Detector",
    "Model",
    "Store",
    "Technique",
    "compiled",
    "connection_event",
    "export_json",
    "feed_captures",
    "import_json",
    "is_external",
    "learn",
]


def feed_captures(
    detector: Detector,
    paths: Iterable[str | os.PathLike],
    protocols: Iterable[str] | None = None,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    progress=None,
    engine=None,
    on_message: Callable[[Any, str], None] | None = None,
):
    """Read captures into ``detector``: every Message, and a connection event per flow.

    Returns the :class:`~otdpi.engine.Engine` used (its counters say what was read).
    ``on_alert`` is called with each alert as it is raised; ``on_message``, when
    given, with each Message and the capture's path before the detector sees it
    (the CLI builds its inventory so in the same pass).
    """
    from otdpi.engine import Engine
    from otdpi.learner.detector import connection_event

    ended: list = []
    if engine is None:
        engine = Engine(protocols, on_flow_end=ended.append, progress=progress)
    else:
        engine.on_flow_end = ended.append
    feed = detector.feed
    for path in paths:
        if progress is not None and hasattr(progress, "start"):
            progress.start(os.fspath(path))
        detector.new_capture()
        capture = os.fspath(path)
        for message in engine.messages(path):
            if on_message is not None:
                on_message(message, capture)
            alerts = feed(message)
            if ended:
                for flow in ended:
                    alerts += feed(connection_event(flow))
                ended.clear()
            if alerts and on_alert is not None:
                for alert in alerts:
                    on_alert(alert)
        for flow in ended:
            for alert in feed(connection_event(flow)):
                if on_alert is not None:
                    on_alert(alert)
        ended.clear()
    detector.finish()
    return engine


def learn(
    paths: Iterable[str | os.PathLike], protocols: Iterable[str] | None = None
) -> Baseline:
    """Learn a baseline from captures (learning only, no detection)."""
    from otdpi.learner.detector import Detector

    detector = Detector(learn_for=float("inf"))
    feed_captures(detector, paths, protocols)
    return detector.baseline
