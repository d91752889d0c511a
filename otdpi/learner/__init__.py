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

from otdpi.learner.baseline import Baseline
from otdpi.learner.detector import Detector, connection_event, is_external
from otdpi.learner.models import MODELS, TECHNIQUES, Model, Technique
from otdpi.learner.store import DEFAULT_DB, Store, export_json, import_json

__all__ = [
    "DEFAULT_DB",
    "MODELS",
    "TECHNIQUES",
    "Baseline",
    "Detector",
    "Model",
    "Store",
    "Technique",
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
):
    """Read captures into ``detector``: every Message, and a connection event per flow.

    Returns the :class:`~otdpi.engine.Engine` used (its counters say what was read).
    ``on_alert`` is called with each alert as it is raised.
    """
    from otdpi.engine import Engine

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
        for message in engine.messages(path):
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
    detector = Detector(learn_for=float("inf"))
    feed_captures(detector, paths, protocols)
    return detector.baseline
