"""The covert-channel model: which value windows look like data, and when it alerts."""

from __future__ import annotations

import random
import struct

from otdpi.learner import Detector
from otdpi.learner.covert import WINDOW, Stream, is_data, judge
from otdpi.message import Endpoint, Message, Target

RTU, MASTER = "10.0.0.2", "10.0.0.5"


def _window(register_values) -> list[list[int]]:
    """Rows of a window from one generator of values per register."""
    return [[next(values) for values in register_values] for _ in range(WINDOW)]


def _uniform(rng, bits):
    while True:
        yield rng.randrange(0, 1 << bits)


def _drifting(rng, level, noise):
    while True:
        level += rng.randint(-noise, noise)
        yield level


def _verdict(rows) -> bool:
    data, width, _ = judge(rows)
    return is_data(data, width)


def test_evenly_spread_values_without_continuity_are_data():
    rng = random.Random(1)
    assert _verdict(_window([_uniform(rng, 13) for _ in range(12)]))
    assert _verdict(_window([_uniform(rng, 16) for _ in range(2)]))


def test_process_values_are_not():
    rng = random.Random(2)
    # Drifting levels, a wrapping pulse counter, a ramp, narrow noise, a state.
    counter = iter(range(0, 10**7, 7919))
    wrapping = (value % 65536 for value in counter)
    ramp = iter(range(0, 10**6, 300))
    states = (rng.choice((0, 1, 2)) for _ in iter(int, 1))
    for block in (
        [_drifting(rng, 20000, 40) for _ in range(8)],
        [wrapping, (value % 65536 for value in iter(range(5, 10**7, 6007)))],
        [ramp, iter(range(10**5, 10**6, 977))],
        [_uniform(rng, 6) for _ in range(4)],
        [states, states],
    ):
        assert not _verdict(_window(block))


def test_a_float_pair_is_half_data_and_stays_out():
    rng = random.Random(3)

    def words():
        while True:
            high, low = struct.unpack(">HH", struct.pack(">f", 50 + rng.gauss(0, 0.5)))
            yield high, low

    pairs = [next(words()) for _ in range(WINDOW)]
    # The noisy low word first, so that both registers are looked at.
    rows = [[low, high] for high, low in pairs]
    data, width, _ = judge(rows)
    assert (data, width) == (1, 2)
    assert not is_data(data, width)
    assert not _verdict([list(pair) for pair in pairs])


def test_s7_reals_read_as_integers_are_a_measurement():
    rng = random.Random(4)

    def real():
        while True:
            yield struct.unpack(">I", struct.pack(">f", 230 + rng.gauss(0, 20)))[0]

    assert not _verdict(_window([real(), real(), real()]))


def test_a_single_register_or_an_odd_window_is_never_judged_data():
    rng = random.Random(5)
    assert not _verdict(_window([_uniform(rng, 16)]))
    rows = _window([_uniform(rng, 16) for _ in range(4)])
    rows[5] = rows[5][:3]
    assert not _verdict(rows)
    rows = _window([_uniform(rng, 16) for _ in range(4)])
    rows[7][0] = 2.5
    assert not _verdict(rows)


def test_a_process_like_stream_is_judged_less_and_less_often():
    stream = Stream()
    waits = []
    for _ in range(6):
        rows = None
        while rows is None:
            rows = stream.add([1, 2])
        stream.judged(False)
        waits.append(stream.wait // WINDOW)
    assert waits == [1, 3, 7, 15, 15, 15]
    stream.judged(True)
    assert stream.wait == 0


def _poll(ts, values, unit=1, start=9):
    target = (Target("holding_registers", start, len(values)),)
    return [
        Message(
            ts, 1, 1, Endpoint(MASTER, 40000), Endpoint(RTU, 502), "modbus", "request",
            "read_holding_registers", 3, "read", target, {"unit_id": unit},
        ),
        Message(
            ts + 0.005, 2, 1, Endpoint(RTU, 502), Endpoint(MASTER, 40000), "modbus",
            "response", "read_holding_registers", 3, "read", target,
            {"unit_id": unit, "registers": list(values)},
        ),
    ]


def _feed(detector, messages):
    for message in messages:
        detector.feed(message)
    return [a for a in detector.alerts if a["model"] == "ot/covert-channel"]


def test_polled_values_that_turn_into_data_are_a_covert_channel():
    rng = random.Random(6)
    level = [1000 + 100 * n for n in range(12)]
    messages = []
    for poll in range(1000):
        if poll < 250:
            level = [value + rng.randint(-3, 3) for value in level]
            values = level
        else:
            values = [rng.randrange(0, 8192) for _ in range(12)]
        messages += _poll(poll * 0.25, values)
    detector = Detector(learn_for=40.0)
    [alert] = _feed(detector, messages)
    assert alert["score"] == 75
    assert [t["id"] for t in alert["techniques"]] == ["T0869", "T1001.002"]
    assert alert["evidence"]["targets"] == [["holding_registers", 9, 12]]
    assert "holding registers 9\u201320" in alert["explanation"]
    # Judged less often while it was a process: still found within 16 windows.
    assert alert["ts"] < (250 + 16 * WINDOW) * 0.25
    assert "never did before" in alert["explanation"]


def test_data_learned_as_such_is_reported_lower_and_accepted_in_time():
    rng = random.Random(7)
    messages = []
    for poll in range(600):
        messages += _poll(poll * 0.25, [rng.randrange(0, 8192) for _ in range(6)])
    [alert] = _feed(Detector(learn_for=60.0), messages)
    assert alert["score"] == 55
    assert "as they have for" in alert["explanation"]
    assert _feed(Detector(learn_for=60.0, accept_after=30.0), messages) == []


def test_the_units_behind_a_gateway_are_streams_of_their_own():
    # Three devices with steady levels far apart, polled in turn through one
    # gateway: mixed in one stream their values jump at every poll.
    rng = random.Random(8)
    messages = []
    for poll in range(900):
        unit = poll % 3 + 1
        base = (3000, 30000, 60000)[unit - 1]
        values = [base + 500 * n + rng.randint(-20, 20) for n in range(4)]
        messages += _poll(poll * 0.1, values, unit=unit)
    assert _feed(Detector(learn_for=10.0), messages) == []


def test_captures_learned_apart_and_merged_give_the_verdicts_of_one_run():
    # Two captures of the same poll, the first a process, the second carried
    # data, cut so that their windows fall differently if a stream's start
    # depended on what the baseline already held.
    rng = random.Random(9)
    level = [2000 + 50 * n for n in range(6)]
    first, second = [], []
    for poll in range(301):
        level = [value + rng.randint(-2, 2) for value in level]
        first += _poll(poll * 0.5, level)
    for poll in range(301):
        second += _poll(1000 + poll * 0.5, [rng.randrange(0, 4096) for _ in range(6)])

    together = Detector(learn_for=10**6)
    apart = [Detector(learn_for=10**6), Detector(learn_for=10**6)]
    for capture, alone in zip((first, second), apart):
        together.new_capture()
        alone.new_capture()
        _feed(together, capture)
        _feed(alone, capture)
    for detector in (together, *apart):
        detector.finish()
    merged = apart[0].baseline.merge(apart[1].baseline)
    [relation] = together.baseline.relations.values()
    assert relation.carriers  # the verdicts were counted
    assert merged.to_json() == together.baseline.to_json()
