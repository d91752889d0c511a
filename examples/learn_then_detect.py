"""Learns normal behaviour from the start of a capture, then prints what was new after it."""

from __future__ import annotations

import sys
from pathlib import Path

from otdpi.learner import Detector, feed_captures

capture = sys.argv[1] if len(sys.argv) > 1 else str(
    Path(__file__).resolve().parents[1] / "fixtures" / "learner_scenario.pcap")

# 150 s of capture time are learned only; after that every message is scored,
# and learning goes on, so what stays long enough becomes normal.
detector = Detector(learn_for=150.0)
feed_captures(detector, [capture])

for alert in detector.alerts:
    techniques = ", ".join(t["id"] for t in alert["techniques"])
    print(f"{alert['time']}  {alert['score']:3d}  {alert['model']:<20} [{techniques}]")
    print(f"    {alert['explanation']}")
print(f"{len(detector.alerts)} alerts; {len(detector.baseline.devices)} devices learned")
