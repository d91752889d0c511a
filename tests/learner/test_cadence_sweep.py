"""The cadence sweep that looks only at what changed gives a full sweep's alerts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otdpi.learner import Detector
from otdpi.message import Endpoint, Message, Target


class FullSweepDetector(Detector):
    """A detector whose every cadence sweep looks at every service, as before."""

    def _check_cadence(self, ts):
        self._cadence.everything = True
        return super()._check_cadence(ts)


def _exchange(ts, client, server, service, start, flow):
    target = (Target("holding_registers", start, 4),)
    return [
        Message(
            ts, 1, flow, Endpoint(client, 40000 + flow), Endpoint(server, 502),
            "modbus", "request", service, None, "read", target, {},
        ),
        Message(
            ts + 0.004, 2, flow, Endpoint(server, 502),
            Endpoint(client, 40000 + flow), "modbus", "response", service, None,
            "read", target, {"registers": [1, 2, 3, 4]},
        ),
    ]


# One poller: (period, what happens at its change time, change time, resume time).
_POLLER = st.tuples(
    st.sampled_from((0.5, 1.0, 2.0, 5.0)),
    st.sampled_from(("steady", "stop", "faster", "slower", "stop_and_resume")),
    st.floats(min_value=60.0, max_value=150.0),
    st.floats(min_value=160.0, max_value=260.0),
)


def _stream(pollers):
    messages = []
    for n, (period, change, at, resume) in enumerate(pollers):
        client = f"10.0.2.{n % 3 + 1}"
        server = f"10.0.1.{n + 1}"
        service = ("read_holding_registers", "read_input_registers")[n % 2]
        t = 0.013 * n
        while t < 300.0:
            if at <= t < resume and change in ("stop", "stop_and_resume"):
                t = resume if change == "stop_and_resume" else 300.0
                continue
            messages += _exchange(t, client, server, service, 4 * n, n + 1)
            step = period
            if t >= at and change == "faster":
                step = period / 8
            elif t >= at and change == "slower":
                step = period * 8
            t += step
    messages.sort(key=lambda m: m.ts)
    return messages


def _alerts(cls, messages):
    detector = cls(learn_for=50.0)
    for message in messages:
        detector.feed(message)
    return detector.alerts


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.lists(_POLLER, min_size=1, max_size=5))
def test_incremental_sweeps_raise_what_full_sweeps_raise(pollers):
    messages = _stream(pollers)
    assert _alerts(Detector, messages) == _alerts(FullSweepDetector, messages)


def test_the_comparison_sees_stops_changes_and_resumes():
    # Guards the property above against comparing two empty lists.
    pollers = [
        (1.0, "stop", 80.0, 300.0),
        (2.0, "faster", 90.0, 300.0),
        (0.5, "stop_and_resume", 70.0, 200.0),
        (5.0, "slower", 100.0, 300.0),
        (1.0, "steady", 100.0, 300.0),
    ]
    messages = _stream(pollers)
    alerts = _alerts(Detector, messages)
    models = [a["model"] for a in alerts]
    assert models.count("ot/cadence-stop") == 2
    assert "ot/cadence-change" in models
    assert alerts == _alerts(FullSweepDetector, messages)
