"""Learner CPU per message with and without the flood, MAC-change and point-value checks.

Run: ``python benchmarks/bench_learner_models.py [--captures ../shared/captures]
[--repeat 5]``. The messages of the QUT water-tank flood (S7comm) and the Lemay
covert-channel polling (Modbus) are dissected once, then fed to a detector
(5 s of learning, then scoring) with all models and with the added ones left
out, alternately in one process; the best CPU time of each is printed. Leaving
``ot/value-out-of-range`` out also drops the older per-relationship value
alerts (their check still runs), so the difference is the cost of
``surge.py``, ``links.py`` and ``points.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from otdpi.engine import Engine
from otdpi.learner import MODELS, Detector

DEFAULT_CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "captures"
CAPTURES = (
    "attacks/qut_s7_watertankonmanu_flooding_master.pcap",
    "attacks/lemay_covert_channel_4d_12s.pcap",
)
ADDED = ("ot/request-flood", "ot/mac-change", "ot/value-out-of-range")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captures", type=Path, default=DEFAULT_CAPTURES)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    messages = []
    for name in CAPTURES:
        messages += list(Engine().messages(args.captures / name))
    variants = {
        "all models": MODELS,
        "without the added checks": {k: v for k, v in MODELS.items() if k not in ADDED},
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.repeat):
        for label, models in variants.items():
            detector = Detector(learn_for=5.0, models=models)
            start = time.process_time()
            for message in messages:
                detector.feed(message)
            best[label] = min(best[label], time.process_time() - start)
    base = best["without the added checks"]
    print(f"{len(messages)} messages, best of {args.repeat}")
    for label, seconds in best.items():
        print(
            f"{label}: {seconds:.3f} s CPU, {seconds / len(messages) * 1e6:.2f} us "
            f"per message ({(seconds / base - 1) * 100:+.0f} %)"
        )


if __name__ == "__main__":
    main()
