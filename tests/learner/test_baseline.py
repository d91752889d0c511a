"""Baseline state: learning, exact merge (merge(A, B) == learn(A + B)), JSON."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from otdpi.learner.baseline import (
    Baseline,
    add_moment,
    mean_std,
    merge_moments,
    new_moments,
)
from otdpi.message import Endpoint, Message, Target

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.7"]
ACTIONS = ["read", "write", "control", "identify", "program"]


@st.composite
def messages(draw):
    """A stream of envelope-only messages of made-up protocols and services."""
    count = draw(st.integers(0, 40))
    out = []
    ts = draw(st.integers(0, 10_000)) / 1000
    for frame in range(1, count + 1):
        ts += draw(st.integers(0, 5_000)) / 1000
        src, dst = draw(st.sampled_from(IPS)), draw(st.sampled_from(IPS))
        kind = draw(st.sampled_from(["request", "response", "event"]))
        protocol = draw(st.sampled_from(["modbus", "dnp3", "s7comm"]))
        service = draw(st.sampled_from(["read_a", "write_b", "restart", "ident"]))
        action = draw(st.sampled_from(ACTIONS))
        space = draw(st.sampled_from(["holding_registers", "coils", "DB1"]))
        start = draw(st.integers(0, 500))
        n = draw(st.integers(1, 8))
        fields = {"length": draw(st.integers(0, 260))}
        if draw(st.booleans()):
            fields["values"] = draw(
                st.lists(st.integers(-5, 70_000), min_size=n, max_size=n)
            )
        if kind == "response" and draw(st.booleans()):
            fields["response_time"] = draw(st.integers(0, 10_000)) / 1e6
        if draw(st.booleans()):
            fields["sub_function_name"] = draw(st.sampled_from(["x", "y"]))
        out.append(
            Message(
                ts,
                frame,
                1,
                Endpoint(src, 1000),
                Endpoint(dst, 502),
                protocol,
                kind,
                service,
                None,
                action,
                (Target(space, start, n),),
                fields,
            )
        )
    return out


def _learned(*streams) -> Baseline:
    base = Baseline()
    for stream in streams:
        base.learn_all(stream)
    return base


@settings(max_examples=150, deadline=None)
@given(messages(), messages())
def test_merge_equals_learning_both_in_one_run(a, b):
    # Every part of the state is a count, a set, a min/max or an integer moment,
    # so the merge is exact: the JSON documents are equal, not merely close.
    merged = _learned(a).merge(_learned(b))
    together = _learned(a, b)
    assert merged.to_json() == together.to_json()


@settings(max_examples=50, deadline=None)
@given(messages(), messages(), messages())
def test_merge_is_associative_and_commutative(a, b, c):
    left = _learned(a).merge(_learned(b)).merge(_learned(c))
    right = _learned(c).merge(_learned(b).merge(_learned(a)))
    assert left.to_json() == right.to_json()


@settings(max_examples=50, deadline=None)
@given(messages())
def test_json_round_trip(stream):
    base = _learned(stream)
    text = json.dumps(base.to_json())
    assert Baseline.from_json(json.loads(text)).to_json() == base.to_json()


@given(
    st.lists(st.integers(0, 10**9), max_size=50),
    st.lists(st.integers(0, 10**9), max_size=50),
)
def test_integer_moments_merge_exactly(xs, ys):
    a, b, both = new_moments(), new_moments(), new_moments()
    for x in xs:
        add_moment(a, x)
        add_moment(both, x)
    for y in ys:
        add_moment(b, y)
        add_moment(both, y)
    merge_moments(a, b)
    assert a == both


def test_mean_and_std_from_moments():
    m = new_moments()
    for x in (2, 4, 4, 4, 5, 5, 7, 9):
        add_moment(m, x)
    assert mean_std(m) == (5.0, 2.0)


def test_periodic_polling_is_recognised():
    base = Baseline()
    stream = [
        Message(
            100 + 2.0 * i,
            i,
            1,
            Endpoint("10.0.0.5", 1000),
            Endpoint("10.0.0.2", 502),
            "modbus",
            "request",
            "read_holding_registers",
            3,
            "read",
            (Target("holding_registers", 0, 10),),
            {},
        )
        for i in range(20)
    ]
    base.learn_all(stream)
    rel = base.relations["10.0.0.5", "10.0.0.2", "modbus"]
    assert rel.services["read_holding_registers"].period() == 2.0
    assert rel.addresses["read", "holding_registers"].runs() == [[0, 9]]
    assert base.devices["10.0.0.2"].protocols["modbus", "server"][0] == 20


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), max_size=40))
def test_ranges_equal_the_set_of_addresses(ranges):
    from otdpi.learner.baseline import Ranges

    runs, plain = Ranges(), set()
    for start, count in ranges:
        new = not set(range(start, start + count)) <= plain
        assert runs.add(start, start + count) == new
        plain.update(range(start, start + count))
    assert len(runs) == len(plain)
    assert all(runs.covers(a, a + 1) == (a in plain) for a in range(0, 350))
    # Stored runs are disjoint and do not touch.
    assert all(e < s for e, s in zip(runs.ends, runs.starts[1:]))
