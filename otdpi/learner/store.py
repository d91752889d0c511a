"""The embedded SQLite store of baselines, alerts and inventory, one transaction per save.

A save replaces the baseline document (and the inventory document, when the
run gathered one) and appends the run's alerts inside a single transaction, so a run killed at any point leaves the store exactly as
the last completed save left it: never a half-written baseline. The baseline
is stored as the JSON of :meth:`Baseline.to_json` (never pickle), so the file
can be read by any SQLite client.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from otdpi.errors import UsageError
from otdpi.learner.baseline import Baseline

from otdpi.learner import DEFAULT_DB  # noqa: E402,F401 - one definition

_SCHEMA = """
CREATE TABLE IF NOT EXISTS baseline (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    saved_at REAL NOT NULL,
    messages INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    model TEXT NOT NULL,
    device TEXT,
    score INTEGER NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (ts);
CREATE TABLE IF NOT EXISTS inventory (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    saved_at REAL NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    finished_at REAL NOT NULL,
    command TEXT NOT NULL,
    captures TEXT NOT NULL
);
"""


class Store:
    """An otdpi SQLite file: the baseline, the alerts raised, the runs made.

    Parameters
    ----------
    path
        the database file; created with its schema when missing.

    Raises
    ------
    UsageError
        the file exists but is not an SQLite database otdpi can use.
    """

    def __init__(self, path: str | os.PathLike = DEFAULT_DB, *,
                 read_only: bool = False) -> None:
        self.path = os.fspath(path)
        if read_only:
            self._db = _open_read_only(self.path)
            return
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            # WAL: a reader never sees a save in progress, and a killed writer
            # leaves a journal that the next open rolls back or forward.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"{self.path}: not a usable otdpi database: {exc}"
            ) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def load(self) -> Baseline:
        """The stored baseline, or a new empty one."""
        row = self._db.execute("SELECT document FROM baseline WHERE id = 1").fetchone()
        if row is None:
            return Baseline()
        return Baseline.from_json(json.loads(row[0]))

    def save(
        self,
        baseline: Baseline,
        alerts: Iterable[dict[str, Any]] = (),
        command: str = "",
        captures: Iterable[str] = (),
        inventory: dict[str, Any] | None = None,
    ) -> None:
        """Replace the baseline and append ``alerts``, all in one transaction.

        ``inventory`` (a JSON-ready document, see :meth:`inventory`) replaces
        the stored one in the same transaction; None leaves it as it was.
        """
        document = json.dumps(baseline.to_json(), separators=(",", ":"))
        inventory_document = (
            None if inventory is None
            else json.dumps(inventory, separators=(",", ":"), default=str)
        )
        rows = [
            (
                a["ts"],
                a["model"],
                a.get("device"),
                a["score"],
                json.dumps(a, separators=(",", ":"), default=str),
            )
            for a in alerts
        ]
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT OR REPLACE INTO baseline (id, saved_at, messages, document)"
                " VALUES (1, ?, ?, ?)",
                (time.time(), baseline.messages, document),
            )
            if inventory_document is not None:
                db.execute(
                    "INSERT OR REPLACE INTO inventory (id, saved_at, document)"
                    " VALUES (1, ?, ?)",
                    (time.time(), inventory_document),
                )
            db.executemany(
                "INSERT INTO alerts (ts, model, device, score, document) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            db.execute(
                "INSERT INTO runs (finished_at, command, captures) VALUES (?, ?, ?)",
                (time.time(), command, json.dumps(list(captures))),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def inventory(self) -> dict[str, Any] | None:
        """The stored inventory document, or None when no run kept one (or the
        store predates the inventory table).

        The CLI keeps ``{"inventory": Inventory.to_json(), "statistics":
        ProtocolStatistics.to_json(), "counters": {...}, "captures": [...]}``.
        """
        try:
            row = self._db.execute(
                "SELECT document FROM inventory WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # a store from before the table, read-only
            return None
        return None if row is None else json.loads(row[0])

    def runs(self) -> list[dict[str, Any]]:
        """The runs that saved into this store, oldest first."""
        return [
            {"finished_at": finished, "command": command, "captures": json.loads(paths)}
            for finished, command, paths in self._db.execute(
                "SELECT finished_at, command, captures FROM runs ORDER BY id"
            )
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Every stored alert, oldest first."""
        return [
            json.loads(doc)
            for (doc,) in self._db.execute(
                "SELECT document FROM alerts ORDER BY ts, id"
            )
        ]

    def integrity(self) -> str:
        """SQLite's own ``integrity_check`` verdict (``ok`` when sound)."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]


def _open_read_only(path: str) -> sqlite3.Connection:
    """A connection that can only read an existing otdpi store: nothing is created.

    Raises
    ------
    UsageError
        the file is missing, is not SQLite, or is an SQLite database of
        something else (it lacks the baseline and alerts tables).
    """
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such store")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                             timeout=30)
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path}: not a usable otdpi database: {exc}") from None
    if not {"baseline", "alerts", "runs"} <= tables:
        db.close()
        raise UsageError(f"{path}: an SQLite database, but not an otdpi store")
    return db


def export_json(baseline: Baseline, path: str | os.PathLike) -> None:
    """Write a baseline as JSON that other tools (and :func:`import_json`) read."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(baseline.to_json(), out, separators=(",", ":"))
        out.write("\n")


def import_json(path: str | os.PathLike) -> Baseline:
    """Read a baseline written by :func:`export_json`.

    Raises
    ------
    UsageError
        the file is not JSON or not an otdpi baseline.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return Baseline.from_json(json.load(handle))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not an otdpi baseline: {exc}") from None
