"""Findings store: SQLite rows with the exact bytes, timing and target to replay each.

One row per (protocol, oracle, signature, target): a fault found again only
raises its ``hits``. A row keeps the case as first found, the shrunk case,
what the target did (state, latency, reply bytes), the baseline latency of
the campaign (so a replay judges slowness by the same yardstick) and how
often replays reproduced it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, NamedTuple

from otdpi.fuzzing.profile import Case

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY,
    protocol TEXT NOT NULL,
    target TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    cases INTEGER DEFAULT 0,
    cases_per_second REAL,
    settings TEXT
);
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER REFERENCES campaigns(id),
    protocol TEXT NOT NULL,
    oracle TEXT NOT NULL,
    signature TEXT NOT NULL,
    detail TEXT,
    target_name TEXT NOT NULL,
    target_address TEXT NOT NULL,
    target_command TEXT,
    target_env TEXT,
    max_concurrency INTEGER,
    case_json TEXT NOT NULL,
    shrunk_json TEXT,
    outcome_json TEXT,
    baseline_latency REAL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 1,
    replay_runs INTEGER NOT NULL DEFAULT 0,
    replay_hits INTEGER NOT NULL DEFAULT 0,
    -- unchecked, confirmed (replayed in at least 9 of 10 runs) or unconfirmed
    status TEXT NOT NULL DEFAULT 'unchecked',
    UNIQUE (protocol, oracle, signature, target_name)
);
"""


class Finding(NamedTuple):
    """One stored finding, as read back from the store."""

    id: int
    protocol: str
    oracle: str
    signature: str
    detail: str
    target_name: str
    target_address: str
    target_command: list[str]
    target_env: dict[str, str]
    max_concurrency: int
    case: Case
    shrunk: Case | None
    outcome: dict[str, Any]
    baseline_latency: float | None
    hits: int
    replay_runs: int
    replay_hits: int
    status: str

    @property
    def reproducer(self) -> Case:
        """The shrunk case when there is one, else the case as found."""
        return self.shrunk or self.case


class FindingStore:
    """The SQLite file of campaigns and findings.

    Parameters
    ----------
    path
        the database file, created when missing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        """Commit and close."""
        self.db.commit()
        self.db.close()

    def start_campaign(self, protocol: str, target: str, settings: dict) -> int:
        """A new campaign row; returns its id."""
        cur = self.db.execute(
            "INSERT INTO campaigns (protocol, target, started, settings)"
            " VALUES (?,?,?,?)",
            (protocol, target, time.time(), json.dumps(settings)),
        )
        self.db.commit()
        return cur.lastrowid

    def end_campaign(self, campaign_id: int, cases: int, rate: float) -> None:
        """Close a campaign row with its case count and rate."""
        self.db.execute(
            "UPDATE campaigns SET ended=?, cases=?, cases_per_second=? WHERE id=?",
            (time.time(), cases, rate, campaign_id),
        )
        self.db.commit()

    def record(
        self,
        campaign_id: int,
        protocol: str,
        verdict,
        case: Case,
        outcome: dict[str, Any],
        target,
        baseline_latency: float | None,
    ) -> tuple[int, bool]:
        """Store a verdict; returns (finding id, whether it is new)."""
        now = time.time()
        row = self.db.execute(
            "SELECT id FROM findings WHERE protocol=? AND oracle=? AND signature=? "
            "AND target_name=?",
            (protocol, verdict.oracle, verdict.signature, target.name),
        ).fetchone()
        if row:
            self.db.execute(
                "UPDATE findings SET hits=hits+1, last_seen=? WHERE id=?", (now, row[0])
            )
            return row[0], False
        cur = self.db.execute(
            "INSERT INTO findings (campaign_id, protocol, oracle, signature, detail, "
            "target_name, target_address, target_command, target_env, max_concurrency, "
            "case_json, outcome_json, baseline_latency, first_seen, last_seen) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                campaign_id, protocol, verdict.oracle, verdict.signature,
                verdict.detail, target.name, target.address, json.dumps(target.argv),
                json.dumps(target.env or {}), target.max_concurrency,
                json.dumps(case.to_json()), json.dumps(outcome), baseline_latency,
                now, now,
            ),
        )  # fmt: skip
        self.db.commit()
        return cur.lastrowid, True

    def set_case(self, finding_id: int, case: Case) -> None:
        """Replace the case a finding was first stored with (its culprit named)."""
        self.db.execute(
            "UPDATE findings SET case_json=? WHERE id=?",
            (json.dumps(case.to_json()), finding_id),
        )
        self.db.commit()

    def set_shrunk(self, finding_id: int, case: Case) -> None:
        """Store the shrunk reproducer of a finding."""
        self.db.execute(
            "UPDATE findings SET shrunk_json=? WHERE id=?",
            (json.dumps(case.to_json()), finding_id),
        )
        self.db.commit()

    def set_replays(self, finding_id: int, runs: int, hits: int) -> None:
        """Store how many of ``runs`` replays reproduced a finding, and its status.

        A finding is confirmed when it reproduced in at least nine runs of ten
        (the same share for other run counts), else unconfirmed.
        """
        status = "confirmed" if runs and hits * 10 >= runs * 9 else "unconfirmed"
        self.db.execute(
            "UPDATE findings SET replay_runs=?, replay_hits=?, status=? WHERE id=?",
            (runs, hits, status, finding_id),
        )
        self.db.commit()

    def get(self, finding_id: int) -> Finding | None:
        """One finding by id."""
        rows = self._select("WHERE id=?", (finding_id,))
        return rows[0] if rows else None

    def all(self, campaign_id: int | None = None) -> list[Finding]:
        """Every finding, or those first found by one campaign."""
        if campaign_id is None:
            return self._select("", ())
        return self._select("WHERE campaign_id=?", (campaign_id,))

    def _select(self, where: str, args: tuple) -> list[Finding]:
        self.db.commit()
        rows = self.db.execute(
            "SELECT id, protocol, oracle, signature, detail, target_name,"
            " target_address,"
            " target_command, target_env, max_concurrency, case_json, shrunk_json,"
            " outcome_json, baseline_latency, hits, replay_runs, replay_hits, status"
            f" FROM findings {where} ORDER BY id",
            args,
        ).fetchall()
        return [
            Finding(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4] or "",
                r[5],
                r[6],
                json.loads(r[7] or "[]"),
                json.loads(r[8] or "{}"),
                r[9] or 1,
                Case.from_json(json.loads(r[10])),
                Case.from_json(json.loads(r[11])) if r[11] else None,
                json.loads(r[12] or "{}"),
                r[13],
                r[14],
                r[15],
                r[16],
                r[17],
            )  # fmt: skip
            for r in rows
        ]
