"""Score the learner on the public QUT DNP3 and S7comm attack captures; print tables.

Run: ``python benchmarks/evaluate_qut.py [--captures ../shared/captures]``.

The QUT 2017 DNP3 captures (``qut_dnp3_*``) were taken on the attacker's
host 192.168.10.66 of a lab where master 192.168.10.221 talks DNP3 to
outstation 192.168.10.222; GOOSE and PTP were filtered out when they were
shared. They hold a day each, and every DNP3 message in them belongs to an
attack: the attacker's own traffic, or master/outstation traffic it spoofed
or pulled through itself by ARP spoofing. What comes before the first attack
packet (the nmap ARP sweep of 192.168.10.0/24, found with
``tshark -Y eth.src==00:10:18:cb:8c:13``) is broadcast NTP, NetBIOS and
ARP only. The attack episodes and their times come from the dataset's own
``Attack_script_log.log`` of each capture (local time, UTC+10), transcribed
into ``benchmarks/qut_attack_windows.tsv``.

The QUT 2017 S7comm captures are cut to one attack's window (the
dataset's ``config.xml`` start and finish), seen from the PLC-side
("master") or HMI-side port of a lab where HMI 10.10.10.20 polls PLC
10.10.10.10 and the attacker is 10.10.10.66. The threshold captures hold
3 to 4 s of HMI polling before the attacker's one write; the flooding
captures start inside the attack, so their baseline is the HMI polling
learned from the benign part of both threshold captures (same lab, same
day, same HMI and PLC).

An alert is *true* when its evidence names the attacker (S7) or when it
falls inside one of the capture's logged attack episodes, from 2 s before
START to 60 s after END (DNP3: the master and outstation only talk inside
episodes in these captures); every other alert is *false*.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

from otdpi.learner import Baseline, Detector, connection_event

DEFAULT_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
WINDOWS = Path(__file__).resolve().parent / "qut_attack_windows.tsv"
EPISODE_BEFORE = 2.0
EPISODE_AFTER = 60.0

S7_ATTACKER = "10.10.10.66"
# Benign HMI polling of the S7 lab: each threshold capture up to its attack write.
S7_BENIGN = (
    ("attacks/qut_s7_changelowerthreshold_master.pcap", 1481792073.523681),
    ("attacks/qut_s7_changeupperthreshold_master.pcap", 1481789205.942055),
)


@dataclass(frozen=True)
class Case:
    """One attack capture and where its attack starts.

    ``first_attack`` is the time of the first attack packet (for the S7
    threshold captures, of the attacker's write: its connection was opened
    before the cut and shows only a bare ACK at frame 1). ``learn`` says what
    the baseline is: ``"prefix"`` (the capture up to ``first_attack``) or
    ``"s7-benign"`` (see :data:`S7_BENIGN`).
    """

    capture: str
    attack: str
    first_attack: float
    first_frame: int
    learn: str = "prefix"
    attacker: str | None = None  # S7: true alerts name it
    effect_from: float | None = None  # HMI view: when the attack shows, if at all
    note: str = ""


CASES = (
    Case(
        "attacks/qut_dnp3_flooding_testing_infrequent.pcap",
        "DNP3 flooding: write, freeze and replay floods of outstation .222 by "
        ".66, slave masquerading floods of master .221",
        1472624123.808194,
        1313,
    ),
    Case(
        "attacks/qut_dnp3_injection_testing_frequent.pcap",
        "DNP3 injection: warm/cold restart, immediate freeze, replayed and "
        "pushed messages spoofed as master .221",
        1471220657.336675,
        241,
    ),
    Case(
        "attacks/qut_dnp3_mitm_testing_frequent.pcap",
        "DNP3 MITM: .66 ARP-spoofs between .221 and .222, forwards, hijacks "
        "and alters responses",
        1474786621.501070,
        128,
    ),
    Case(
        "attacks/qut_s7_changelowerthreshold_master.pcap",
        "S7: .66 writes 25.0 to MD12 (lower threshold, polled as 30.0)",
        1481792073.523681,
        56,
        attacker=S7_ATTACKER,
    ),
    Case(
        "attacks/qut_s7_changeupperthreshold_master.pcap",
        "S7: .66 writes 35.0 to MD8 (upper threshold, polled as 40.0)",
        1481789205.942055,
        42,
        attacker=S7_ATTACKER,
    ),
    Case(
        "attacks/qut_s7_watertankonmanu_flooding_master.pcap",
        "S7: .66 floods the PLC with writes forcing the water tank to manual",
        1481792748.034160,
        1,
        learn="s7-benign",
        attacker=S7_ATTACKER,
    ),
    Case(
        "attacks/qut_s7_conveyorbelton_flooding_hmi.pcap",
        "S7: write flood turning the conveyor belt on, seen from the HMI port "
        "(no attacker packet in view)",
        1481793706.956431,
        1,
        learn="s7-benign",
        attacker=S7_ATTACKER,
        note="HMI-side view: the flood itself is not in the capture",
    ),
)


def episodes(capture: str) -> list[tuple[str, float, float]]:
    """``(attack, start, end)`` of a capture's logged episodes (UTC epoch)."""
    if not WINDOWS.exists():
        return []
    name = Path(capture).name
    with WINDOWS.open() as f:
        rows = csv.reader(
            (line for line in f if not line.startswith("#")), delimiter="\t"
        )
        return [(a, float(s), float(e)) for c, a, s, e in rows if c == name]


def _learned_until(detector: Detector, paths_and_limits) -> Baseline:
    """Learn each capture up to its limit; nothing after it is learned."""
    from otdpi.engine import Engine

    for path, limit in paths_and_limits:
        ended: list = []
        engine = Engine(on_flow_end=ended.append)
        detector.new_capture()
        for message in engine.messages(path):
            if message.ts >= limit:
                break
            detector.feed(message)
            for flow in ended:
                if flow.first_ts < limit:
                    detector.feed(connection_event(flow))
            ended.clear()
    detector.finish()
    base = detector.baseline
    base.learned_until = max(limit for _, limit in paths_and_limits)
    return base


def baseline_for(case: Case, root: Path) -> Baseline:
    """The baseline a case is scored against (see :class:`Case`)."""
    detector = Detector(learn_for=float("inf"))
    if case.learn == "prefix":
        pairs = [(root / case.capture, case.first_attack)]
    else:
        pairs = [(root / c, t) for c, t in S7_BENIGN]
    return _learned_until(detector, pairs)


def _is_true(alert: dict, case: Case, windows) -> bool:
    evidence = alert["evidence"]
    if case.attacker is not None:
        if case.attacker in (evidence.get("client"), evidence.get("server")):
            return True
        if case.effect_from is None:
            return False
        return alert["ts"] >= case.effect_from
    ts = alert["ts"]
    return any(s - EPISODE_BEFORE <= ts <= e + EPISODE_AFTER for _, s, e in windows)


def evaluate(root: Path = DEFAULT_CAPTURES, models=None) -> list[dict]:
    """Per case: alerts, true and false ones, the first true alert and its delay."""
    from otdpi.engine import Engine
    from otdpi.learner import feed_captures

    rows = []
    for case in CASES:
        path = root / case.capture
        if not path.exists():
            continue
        windows = episodes(case.capture)
        base = baseline_for(case, root)
        detector = Detector(base, learn_for=None, models=models)
        if case.learn == "prefix":
            # Detect what follows the learned prefix, learning on as it goes.
            ended: list = []
            engine = Engine(on_flow_end=ended.append)
            detector.new_capture()
            for message in engine.messages(path):
                if message.ts >= case.first_attack:
                    detector.feed(message)
                for flow in ended:
                    if flow.first_ts >= case.first_attack or flow.last_ts >= (
                        case.first_attack
                    ):
                        detector.feed(connection_event(flow))
                ended.clear()
            for flow in ended:
                detector.feed(connection_event(flow))
            detector.finish()
        else:
            feed_captures(detector, [path], engine=Engine())
        alerts = detector.alerts
        true = [a for a in alerts if _is_true(a, case, windows)]
        false = [a for a in alerts if not _is_true(a, case, windows)]
        first = min(true, key=lambda a: a["ts"]) if true else None
        per_kind = {}
        for kind in sorted({k for k, _, _ in windows}):
            spans = [(s, e) for k, s, e in windows if k == kind]
            hit = [
                (s, e)
                for s, e in spans
                if any(s - EPISODE_BEFORE <= a["ts"] <= e + EPISODE_AFTER for a in true)
            ]
            # model -> its earliest alert's time into an episode of this kind
            models_in: dict[str, float] = {}
            for a in true:
                for s, e in spans:
                    if s - EPISODE_BEFORE <= a["ts"] <= e + EPISODE_AFTER:
                        into = a["ts"] - s
                        if into < models_in.get(a["model"], float("inf")):
                            models_in[a["model"]] = into
            per_kind[kind] = {
                "episodes": len(spans),
                "alerted": len(hit),
                "models": models_in,
            }
        # Each model's first true alert: its delay from the first attack packet
        # and from the start of the logged episode it fell in.
        model_delays = {}
        for alert in sorted(true, key=lambda a: a["ts"]):
            if alert["model"] in model_delays:
                continue
            inside = [
                (k, s)
                for k, s, e in windows
                if s - EPISODE_BEFORE <= alert["ts"] <= e + EPISODE_AFTER
            ]
            kind, start = inside[0] if inside else ("", case.first_attack)
            model_delays[alert["model"]] = {
                "delay": alert["ts"] - case.first_attack,
                "episode": kind,
                "into_episode": alert["ts"] - start,
                "techniques": [t["id"] for t in alert["techniques"]],
            }
        rows.append(
            {
                "capture": case.capture,
                "model_delays": model_delays,
                "attack": case.attack,
                "case": case,
                "detected": bool(true),
                "alerts": len(alerts),
                "true": len(true),
                "false": len(false),
                "models": sorted({a["model"] for a in true}),
                "techniques": sorted({t["id"] for a in true for t in a["techniques"]}),
                "first": first,
                "delay": None if first is None else first["ts"] - case.first_attack,
                "false_alerts": false,
                "true_alerts": true,
                "per_kind": per_kind,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    rows = evaluate(args.captures)
    print(
        "| capture | attack | detected by (first alert) | ATT&CK | delay | "
        "alerts (true / false) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        first = row["first"]
        by = f"{first['model']} ({', '.join(row['models'])})" if first else "**missed**"
        techniques = ", ".join(t["id"] for t in first["techniques"]) if first else ""
        delay = f"{row['delay']:.1f} s" if first else ""
        print(
            f"| `{Path(row['capture']).name}` | {row['attack']} | {by} | "
            f"{techniques} | {delay} | {row['alerts']} ({row['true']} / "
            f"**{row['false']}**) |"
        )
    print()
    print(
        "| capture | model | ATT&CK | first alert after the first attack packet "
        "| episode it fell in (time into it) |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        for model, d in row["model_delays"].items():
            print(
                f"| `{Path(row['capture']).name}` | {model} | "
                f"{', '.join(d['techniques'])} | {d['delay']:.1f} s | "
                f"{d['episode'] or '-'} ({d['into_episode']:.1f} s) |"
            )
    print()
    print(
        "| capture | attack kind | episodes | with an alert | models (earliest "
        "alert, time into an episode) |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        for kind, k in row["per_kind"].items():
            print(
                f"| `{Path(row['capture']).name}` | {kind} | {k['episodes']} | "
                f"{k['alerted']} | "
                + ", ".join(f"{m} ({d:.1f} s)" for m, d in sorted(k["models"].items()))
                + " |"
            )
    for row in rows:
        for alert in row["false_alerts"]:
            print(
                f"false alert in {Path(row['capture']).name}: {alert['model']} "
                f"{alert['time']} {alert['explanation']}"
            )
        if args.verbose:
            for alert in row["true_alerts"]:
                print(
                    f"true alert in {Path(row['capture']).name}: {alert['model']} "
                    f"{alert['time']} {alert['explanation']} (+{alert['repeats']})"
                )


if __name__ == "__main__":
    main()
