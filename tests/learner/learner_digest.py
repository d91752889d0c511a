"""Prints what the learner makes of some input, for comparing two builds of it.

``python tests/learner/learner_digest.py CAPTURE...`` learns the first 30 % of
each capture's time span and detects on the rest; ``--stream SEED`` does the
same with a made-up stream of odd but legal Messages (see :func:`stream`).
The output is one JSON document per input: its alerts, the baseline and the
message count, so that the compiled and the interpreted learner
(``OTDPI_PURE_PYTHON=1``) can be compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

from otdpi.message import Endpoint, Message, Target


def digest_of(detector) -> dict:
    return {
        "alerts": detector.alerts,
        "baseline": detector.baseline.to_json(),
        "messages": detector.messages,
    }


def of_capture(path: str) -> dict:
    from otdpi.capture import open_capture
    from otdpi.learner import Detector, feed_captures

    with open_capture(path) as reader:
        stamps = [record[1] for record in reader]
    span = stamps[-1] - stamps[0] if stamps else 0.0
    detector = Detector(learn_for=max(span * 0.3, 1e-6))
    feed_captures(detector, [path])
    return digest_of(detector)


def stream(seed: int, count: int = 4000) -> list[Message]:
    """Messages a dissector may well emit, drawn to reach the learner's corners.

    Few devices, so that relationships and services repeat and take the fast
    path; values that are ints, bools, floats, ints past 64 bits or missing;
    targets as lists as well as tuples; a timestamp that now and then runs
    backwards; new services, writes, controls, identification and connection
    events between them.
    """
    rng = random.Random(seed)
    ips = [f"10.1.0.{n}" for n in range(1, 6)] + ["203.0.113.7"]
    macs = {ip: f"02:00:00:00:00:{n:02x}" for n, ip in enumerate(ips)}
    services = [
        ("read_holding_registers", "read"),
        ("read_coils", "read"),
        ("write_single_register", "write"),
        ("write_multiple_registers", "write"),
        ("diagnostics", "control"),
        ("read_device_identification", "identify"),
        ("program_download", "program"),
    ]
    ts = 1_700_000_000.0
    out = []
    for frame in range(1, count + 1):
        ts += rng.choice((0.001, 0.01, 0.25, 0.5, 1.0, 1.0, 1.0, 7.0))
        if rng.random() < 0.02:
            ts -= 0.3  # captures are not always in time order
        client, server = rng.sample(ips[:5], 2) if rng.random() < 0.9 else rng.sample(ips, 2)
        service, action = rng.choice(services[:2] * 6 + services)
        start = rng.choice((0, 0, 0, 10, 100, rng.randrange(0, 70000)))
        width = rng.choice((1, 2, 4, 12))
        target = Target(rng.choice(("holding_registers", "coils", "DB1")), start, width)
        values = [rng.choice((rng.randrange(0, 65536), rng.randrange(0, 4))) for _ in range(width)]
        odd = rng.random()
        if odd < 0.03:
            values[0] = True
        elif odd < 0.05:
            values[-1] = 2.5
        elif odd < 0.06:
            values[0] = 1 << 70
        fields = {"length": rng.choice((6, 12, 27, 1 << 40)), "unit_id": 1}
        if action == "control":
            fields["sub_function_name"] = rng.choice(("restart_communications", "return_query_data"))
        kind = "request"
        src, dst = Endpoint(client, 40000 + frame % 7, macs[client]), Endpoint(server, 502, macs[server])
        if rng.random() < 0.5:
            kind = "response"
            src, dst = dst, src
            fields["response_time"] = rng.choice((0.001, 0.02, 4000.0))
            fields["registers"] = values
        elif action == "write":
            fields["values" if width > 1 else "value"] = values if width > 1 else values[0]
        if rng.random() < 0.05:
            fields["item_values"] = [values[0]]
        targets = [target] if rng.random() < 0.05 else (target,)
        protocol = "modbus" if rng.random() < 0.95 else "s7comm"
        out.append(
            Message(ts, frame, frame % 50, src, dst, protocol, kind, service, None, action, targets, fields)
        )
        if rng.random() < 0.03:
            out.append(
                Message(
                    ts, frame, 10_000 + frame, Endpoint(client, 50000, macs[client]),
                    Endpoint(server, rng.choice((80, 443, 4444)), macs[server]), "tcp",
                    "event", "connection", None, "session", (),
                    {"server_port": 443, "started": ts - 5.0, "duration": 5.0, "packets": 4,
                     "payload_bytes": 0, "application": None, "answered": False},
                )
            )
    return out


def of_stream(seed: int) -> dict:
    from otdpi.learner import Detector

    messages = stream(seed)
    detector = Detector(learn_for=(messages[-1].ts - messages[0].ts) * 0.3)
    detector.new_capture()
    for message in messages:
        detector.feed(message)
    detector.finish()
    return digest_of(detector)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*")
    parser.add_argument("--stream", type=int, action="append", default=[])
    args = parser.parse_args()
    from otdpi.learner import compiled

    documents = {"compiled": compiled()}
    for path in args.captures:
        documents[path] = of_capture(path)
    for seed in args.stream:
        documents[f"stream {seed}"] = of_stream(seed)
    json.dump(documents, sys.stdout, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
