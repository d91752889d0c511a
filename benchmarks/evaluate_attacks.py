"""Score the learner on the public Modbus attack captures; print a Markdown table.

Run: ``python benchmarks/evaluate_attacks.py [--captures ../shared/captures]``.

The Lemay & Fernandez (CSET 2016) captures but one share one lab network: a
master 192.168.1.100 polls six RTUs 192.168.1.101-106 every 10 s and an
operator writes coils now and then. Their per-packet labels are not shipped
with the captures, so each case below names the attack the way its
description does (the hosts and flows involved) and the time of its first
packet, read from the capture. Learning uses the benign part of
``send_fake_command`` (everything before its first attack packet, 289 s of
polling with operator writes and NetBIOS chatter) as the benign capture of
that network; for ``send_fake_command`` itself, the same part is learned and
the rest detected. An alert is *true* when its evidence names the attack's
hosts, else *false*. The covert-channel capture is another lab (one master,
one RTU, all of it the channel's traffic): it learns its own first seconds,
before the first read answered with carried data, and only the
covert-channel model's alerts are true there.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from otdpi.learner import Baseline, Detector, feed_captures

DEFAULT_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
BENIGN = "attacks/lemay_send_fake_command_modbus_6rtu.pcap"
BENIGN_UNTIL = 289.0  # seconds from its first packet: its attack starts at 289.4 s


@dataclass(frozen=True)
class Case:
    """One attack capture: which (client, server) pairs are the attack's.

    ``learn_for``: learn the capture's own first seconds instead of the benign
    reference; ``models``: only these models' alerts are the attack's (the
    pairs being those of all the capture's traffic).
    """

    capture: str
    attack: str
    attacker_pairs: tuple[tuple[str, str | None], ...]  # None: any server
    learn_own_prefix: bool = False
    learn_for: float | None = None
    models: frozenset[str] | None = None


CASES = (
    Case(
        "attacks/lemay_characterization_modbus_6rtu.pcap",
        "192.168.1.101 characterises RTU 192.168.1.104 with read queries",
        (("192.168.1.101", None),),
    ),
    Case(
        "attacks/lemay_send_fake_command_modbus_6rtu.pcap",
        "192.168.1.101 sends a fake write_single_coil to RTU 192.168.1.102",
        (("192.168.1.101", None),),
        learn_own_prefix=True,
    ),
    Case(
        "attacks/lemay_moving_two_files_modbus_6rtu.pcap",
        "files moved 192.168.1.105 -> .101 (TCP 1613) and .103 -> .101 (TCP 1617)",
        (("192.168.1.105", "192.168.1.101"), ("192.168.1.103", "192.168.1.101")),
    ),
    Case(
        "attacks/lemay_cnc_uploading_exe_modbus_6rtu.pcap",
        "C&C 192.168.1.105:4444 uploads an executable to 192.168.1.101 (TCP 1630)",
        (("192.168.1.105", "192.168.1.101"),),
    ),
    # Another lab: one master polling one RTU, whose 12 holding registers
    # 9-20 carry data. Before the second read of the block (6.46 s in) the
    # master sets the RTU up, writes the block once and reads it back once.
    # Learned: those first 6.4 s.
    Case(
        "attacks/lemay_covert_channel_4d_12s.pcap",
        "RTU 192.168.43.149 answers 192.168.43.148's polls of holding registers "
        "9-20 with carried data (covert channel)",
        (("192.168.43.148", "192.168.43.149"),),
        learn_for=6.4,
        models=frozenset({"ot/covert-channel"}),
    ),
)


def _is_attack(alert: dict, case: Case) -> bool:
    if case.models is not None and alert["model"] not in case.models:
        return False
    evidence = alert["evidence"]
    client = evidence.get("client")
    server = evidence.get("server")
    return any(
        client == c and (s is None or server == s) for c, s in case.attacker_pairs
    )


def _first_ts(path: Path) -> float:
    from otdpi.capture import open_capture

    with open_capture(path) as reader:
        return next(iter(reader))[1]


def benign_baseline(root: Path) -> Baseline:
    """The learned benign part of the send_fake_command capture."""
    detector = Detector(learn_for=BENIGN_UNTIL)
    # Stop feeding at the end of the benign part: nothing after it is learned.
    limit = _first_ts(root / BENIGN) + BENIGN_UNTIL
    from otdpi.engine import Engine
    from otdpi.learner import connection_event

    ended: list = []
    engine = Engine(on_flow_end=ended.append)
    for message in engine.messages(root / BENIGN):
        if message.ts >= limit:
            break
        detector.feed(message)
        for flow in ended:
            if flow.first_ts < limit:
                detector.feed(connection_event(flow))
        ended.clear()
    detector.finish()
    base = detector.baseline
    base.learned_until = limit
    return base


def evaluate(root: Path = DEFAULT_CAPTURES) -> list[dict]:
    """Per case: alerts raised, true and false ones, and the first true alert."""
    rows = []
    for case in CASES:
        path = root / case.capture
        if not path.exists():
            continue
        if case.learn_for is not None:
            detector = Detector(learn_for=case.learn_for)
        elif case.learn_own_prefix:
            detector = Detector(learn_for=BENIGN_UNTIL)
        else:
            detector = Detector(benign_baseline(root), learn_for=None)
        feed_captures(detector, [path])
        true = [a for a in detector.alerts if _is_attack(a, case)]
        false = [a for a in detector.alerts if not _is_attack(a, case)]
        rows.append(
            {
                "capture": case.capture,
                "attack": case.attack,
                "detected": bool(true),
                "alerts": len(detector.alerts),
                "true": len(true),
                "false": len(false),
                "models": sorted({a["model"] for a in true}),
                "first": min(true, key=lambda a: a["ts"]) if true else None,
                "false_alerts": false,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    args = parser.parse_args()
    rows = evaluate(args.captures)
    if not rows:
        missing = ", ".join(case.capture for case in CASES)
        sys.exit(
            f"none of the attack captures is under {args.captures} ({missing}); "
            "give their folder with --captures"
        )
    print("| capture | attack | detected | models | alerts (true / false) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| `{Path(row['capture']).name}` | {row['attack']} | "
            f"{'yes' if row['detected'] else 'NO'} | {', '.join(row['models'])} | "
            f"{row['alerts']} ({row['true']} / {row['false']}) |"
        )
    for row in rows:
        for alert in row["false_alerts"]:
            print(
                f"false alert in {Path(row['capture']).name}: {alert['model']} "
                f"{alert['explanation']}"
            )


if __name__ == "__main__":
    main()
