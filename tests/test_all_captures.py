"""Every public capture, whatever its protocol, streams through every dissector unharmed.

A plugin's own safety net turns its bugs into ``internal dissector error``
messages rather than crashes; this test fails on any of them, so a bug shows up
here on real traffic even in a protocol whose own tests missed it.
"""

from __future__ import annotations

from collections import Counter

import pytest

from otdpi.engine import Engine
from tests.helpers import corpus_files

CAPTURES = corpus_files()


@pytest.mark.skipif(not CAPTURES, reason="../shared/captures is absent")
@pytest.mark.parametrize("path", CAPTURES, ids=[f"{p.parent.name}/{p.name}" for p in CAPTURES])
def test_capture_streams_without_dissector_errors(path):
    engine = Engine()
    internal = []
    protocols: Counter[str] = Counter()
    for message in engine.messages(path):
        protocols[message.protocol] += 1
        reason = message.status.reason or ""
        if "internal" in reason and "error" in reason or any(
                f.code in ("dissector_error", "internal_error") for f in message.findings):
            internal.append((message.frame, message.protocol, reason))
    assert not internal, f"{len(internal)} internal errors, first: {internal[:5]}"
    assert engine.counters["packets"] > 0
    assert engine.counters["decode_error"] == 0
