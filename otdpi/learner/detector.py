"""Scores Messages against a baseline, raises throttled alerts, and keeps learning.

Strategy
--------
A :class:`Detector` starts in learning mode (for a span of capture time, or
not at all when its baseline came from a store) and then detects: each
message is first compared with the baseline, the models of
:mod:`otdpi.learner.models` turn what is new into findings, and only then is
the message learned. Learning therefore never stops, and what is new is
accepted: a relationship, service or protocol first seen during detection
becomes normal once it has been in the baseline for ``accept_after`` seconds
(until then its repeats are throttled, not re-alerted), and anything not seen
for ``forget_after`` seconds counts as new again. That is the decay.

Periodicity alone never alerts: industrial polling is perfectly periodic.
Only periodic traffic to a rare external endpoint is a beacon.

The detector reads the Message envelope only, plus the field conventions
listed in :mod:`otdpi.learner.baseline` and, for the IT models, the TLS fields
documented in :mod:`dissectors.tls`. Three checks live in their own modules:
request floods (:mod:`otdpi.learner.surge`), IP-to-MAC changes
(:mod:`otdpi.learner.links`, from ``Endpoint.mac``) and written values against
what a server was seen holding (:mod:`otdpi.learner.points`, from
``fields["item_values"]``).
"""

from __future__ import annotations

import ipaddress
import time

try:
    import cython
except ImportError:  # interpreted, and Cython is not installed
    from otdpi.learner._nocython import cython
from collections import deque
from functools import lru_cache
from typing import Any

from otdpi.learner.baseline import (
    IT_PROTOCOLS,
    MAX_VALUE_RANGES,
    Baseline,
    Ranges,
    address_of,
    range_of,
    run_after,
    service_key,
    tuple_item,
    value_range,
    value_source,
)
from otdpi.learner.cadence import Cadence, CadenceWatch, describe_span
from otdpi.learner.covert import (
    MAX_STREAMS,
    MIN_REGISTERS,
    WINDOW,
    Stream,
    is_data,
    judge,
)
from otdpi.learner.links import LinkBindings
from otdpi.learner.models import MODELS, Model, techniques_of
from otdpi.learner.points import PointValues
from otdpi.learner.surge import FloodCounter
from otdpi.message import STATUS_OK, Endpoint, Message

# Limitation: where this module and five others of the learner are not built
# (no C compiler where otdpi was installed, OTDPI_PURE_PYTHON, or a build older
# than its source) the learner runs interpreted, three to four times slower,
# and takes 60-65 % of dissect + learn + score instead of 27-31 %
# (docs/learner.md); the source is shaped for the compiler (casts, typed
# locals), which costs the interpreted mode a little. Wheels built for the
# usual platforms would spare users the compiler.

SCAN_WINDOW = 60.0  # seconds over which one client's novelties add up
SCAN_THRESHOLD = 10  # distinct novelties in the window that make a scan
SCAN_REFRESH = 1.0  # seconds within which a novelty seen again is not noted again
_SCAN_THROTTLE = MODELS["ot/scan"].throttle
BEACON_MIN_INTERVALS = 5
BEACON_MAX_CV = 0.35
BEACON_MIN_PERIOD = 1.0
VALUE_MIN_OBSERVATIONS = 20
CADENCE_CHECK_EVERY = 1.0  # capture seconds between sweeps for stopped polling

_NETS_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "::/128",
    )
)


@lru_cache(maxsize=65536)
def is_external(ip: str) -> bool:
    """Whether an address is outside the private, loopback, link-local and
    multicast ranges.

    The documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
    count as external: they stand for Internet hosts in examples and fixtures.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False  # not an IP address (a serial or fieldbus address)
    return not any(
        address in net for net in _NETS_INTERNAL if net.version == address.version
    )


def _describe_range(space: str, start: int, count: int) -> str:
    name = space.replace("_", " ")
    return (
        f"{name} {start}" if count == 1 else f"{name} {start}\u2013{start + count - 1}"
    )


def _iso(ts: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        + f".{int(ts % 1 * 1e6):06d}Z"
    )


class Novelties:
    """What one client did for the first time in the last :data:`SCAN_WINDOW`
    seconds, for the scan model: each novelty noted with its time, in the
    order noted, and per novelty ``[times in the window, last noted]``;
    ``key`` names the client's scan alerts.

    A novelty seen again within :data:`SCAN_REFRESH` of being noted is not
    noted again: a new relationship polled ten times a second is one novelty
    being kept alive, and noting it once a second keeps it alive as well
    (it leaves the window at most that much earlier).
    """

    __slots__ = ("counts", "head", "key", "kinds", "times")

    def __init__(self, key: tuple) -> None:
        self.key = key  # the scan model's throttle key for this client
        self.times: list[float] = []
        self.kinds: list[tuple] = []
        self.head = 0  # the oldest noted novelty still in the window
        self.counts: dict[tuple, list] = {}

    def note(self, ts: float, novelty: tuple) -> int:
        """Note ``novelty`` at ``ts``; how many distinct ones the window holds,
        or -1 when it was noted less than :data:`SCAN_REFRESH` ago."""
        counts = self.counts
        state = counts.get(novelty)
        if state is not None:
            since = ts - state[1]
            if 0 <= since < SCAN_REFRESH:
                return -1
            state[0] += 1
            state[1] = ts
        else:
            counts[novelty] = [1, ts]
        times = self.times
        kinds = self.kinds
        times.append(ts)
        kinds.append(novelty)
        head = self.head
        while ts - times[head] > SCAN_WINDOW:
            state = counts[kinds[head]]
            head += 1
            state[0] -= 1
            if not state[0]:
                del counts[kinds[head - 1]]
        if head > 256 and head * 2 > len(times):
            del times[:head]
            del kinds[:head]
            head = 0
        self.head = head
        return len(counts)


class Detector:
    """Learns from Messages, then scores them; see the module docstring.

    Parameters
    ----------
    baseline
        state to start from (a new, empty one by default).
    learn_for
        seconds of capture time, from the first message, spent learning only.
        None: detect from the first message (the baseline is already learned).
    accept_after
        seconds after which something first seen during detection is normal.
    forget_after
        seconds without a sighting after which something counts as new again.
    models
        the models to run, by name (all of :data:`MODELS` by default).
    """

    def __init__(
        self,
        baseline: Baseline | None = None,
        learn_for: float | None = None,
        accept_after: float = 86400.0,
        forget_after: float = 30 * 86400.0,
        models: dict[str, Model] | None = None,
    ) -> None:
        self.baseline = baseline if baseline is not None else Baseline()
        self.learn_for = learn_for
        self.learn_until: float | None = None
        self.learning = learn_for is not None and learn_for > 0
        self.accept_after = accept_after
        self.forget_after = forget_after
        self.models = dict(models) if models is not None else MODELS
        self.alerts: list[dict[str, Any]] = []
        self._throttle: dict[tuple, dict[str, Any]] = {}
        self._scan: dict[str, Novelties] = {}
        self._beacon_flows: dict[int, deque] = {}
        self._connections: dict[tuple, deque] = {}
        self._writers: dict[str, set[str]] = {}
        self._values = False  # value_range of the message being scored, once known
        self._next_cadence_check = 0.0
        # Request times and sweeps of the cadence models (otdpi.learner.cadence).
        self._cadence = CadenceWatch()
        # Services learned since the last sweep (each flagged ``dirty``).
        self._cadence_dirty = self._cadence.dirty
        self._last_ts = 0.0
        self.messages = 0
        # Models kept in their own modules; None when not among the models run.
        self._floods = FloodCounter() if "ot/request-flood" in self.models else None
        self._links = (
            LinkBindings(self.baseline.macs) if "ot/mac-change" in self.models else None
        )
        self._points = (
            PointValues(self.baseline.points)
            if "ot/value-out-of-range" in self.models
            else None
        )
        self._more_models = (self._floods, self._links, self._points) != (None,) * 3
        self._covert = "ot/covert-channel" in self.models
        # A baseline's lookup cache may hold another detector's run state.
        for entry in self.baseline._cache.values():
            entry.cadence = None
            entry.flood = None
        # (2 * id(learned range) + is a request) -> (learned range, Stream):
        # the covert-channel model's value streams (otdpi.learner.covert).
        self._streams: dict[int, tuple] = {}

    # -- feeding ------------------------------------------------------------------

    def new_capture(self) -> None:
        """A new capture starts: request gaps never span two files."""
        self.baseline.clock.reset()
        self._cadence.new_capture()
        for entry in self.baseline._cache.values():
            entry.cadence = None
        self._streams.clear()  # value streams never span two captures either
        self.baseline._flow_entries.clear()  # flow numbers start again

    def feed(self, message: Message) -> list[dict[str, Any]]:
        """Learn one message (and score it once learning is over); return new alerts.

        A repeat of something known (the lookup cache has an :class:`Entry` for
        its relationship and service, and it is industrial) is scored here, in
        a few lookups: a read response has its values checked; a request on a
        normal relationship and service has its address ranges (and, for a
        write, its values) checked. Anything else, and anything those checks
        find new, goes through the models in :meth:`_check`, which decide
        exactly as if the fast path did not exist.
        """
        if not isinstance(message, tuple):
            raise TypeError(f"a Message is a named tuple, not {type(message).__name__}")
        # Message fields by position (compiled, from the tuple's own slots): a
        # named field costs a look-up.
        record = cython.cast(tuple, message)
        ts = record[0]
        flow = record[2]
        src = record[3]
        dst = record[4]
        protocol = record[5]
        kind = record[6]
        service = record[7]
        action = record[9]
        given_targets = record[10]
        given_fields = record[11]
        if type(given_targets) is tuple and type(given_fields) is dict:
            targets = given_targets
            fields = given_fields
        else:
            # The envelope's plain containers, which the learner's C types name.
            targets, fields = tuple(given_targets), dict(given_fields)
            message = message._replace(targets=targets, fields=fields)
        if not (isinstance(src, tuple) and isinstance(dst, tuple)):
            raise TypeError("a Message's ends are Endpoint named tuples")
        src_ip = cython.cast(tuple, src)[0]
        dst_ip = cython.cast(tuple, dst)[0]
        if src_ip is None or dst_ip is None:
            message = _keyed_by_mac(message)
            src, dst = message.src, message.dst
            src_ip, dst_ip = src.ip, dst.ip
        self.messages += 1
        if ts > self._last_ts:
            self._last_ts = ts
        base = self.baseline
        sub = fields.get("sub_function_name")
        entry = base.cached_in_flow(flow, src_ip, dst_ip, protocol, kind, service, sub)
        key = None  # built where an entry is made, for a key not seen before
        if entry is None:
            key = (src_ip, dst_ip, protocol, kind, service, sub)
        if self.learning:
            if self.learn_until is None:
                self.learn_until = ts + self.learn_for
            # A connection is judged by when it began: one opened while learning
            # is part of the baseline even if it ends later.
            began = fields.get("started", ts) if kind == "event" else ts
            if began < self.learn_until:
                if entry is None:
                    entry = base.entry(message, key)
                if not entry.fast:
                    base.learn_entry(entry, message)
                    self._track(message, entry)
                elif entry.request:
                    base.learn_request(entry, ts, action, targets, fields)
                    if entry.stats.gaps[0]:
                        cadence = entry.cadence
                        if cadence is None:
                            cadence = self._cadence_of(entry)
                        cadence.note(ts)
                else:
                    base.learn_response(entry, ts, action, targets, fields)
                if self._covert and entry.fast and (
                    action == "write" if entry.request else action == "read"
                ):
                    self._carry(message, entry, ts, targets, fields, False, False)
                links = self._links
                if links is not None and not links.seen_flow(flow, src, dst, ts):
                    links.learn(message)
                if self._points is not None and "item_values" in fields:
                    self._points.learn(message)
                return []
            self.learning = False
            base.learned_until = max(base.learned_until or 0.0, self.learn_until)
            base.finish()
        if base.learned_until is None:
            base.learned_until = base.last if base.last is not None else ts

        # -- the fast path: a repeat of something known -------------------------
        emitted = None
        source = False  # value_source of the message, once computed
        slot = False  # the learned range of its values' target, once looked up
        if entry is not None and entry.fast:
            rel = entry.rel
            values = False  # value_range of the message, once computed
            covered = False
            if not entry.request:
                # Of a response, only the values read back can score.
                if action == "read" and targets:
                    source = value_source(targets, fields)
                    if source is None:
                        values = None
                        emitted = []
                    else:
                        slot = rel.values.get(source[0])
                        values = _known_values(rel, source, slot)
                        if values is not _OUT:
                            emitted = []
                else:
                    emitted = []
            else:
                stats = entry.stats
                forget = self.forget_after
                if entry.established:
                    normal = ts - rel.last <= forget and ts - stats.last <= forget
                else:
                    normal = self._normal(rel.first, rel.last, ts) and self._normal(
                        stats.first, stats.last, ts
                    )
                    learned = base.learned_until
                    if normal and rel.first <= learned and stats.first <= learned:
                        # Once both were first seen while learning they stay so
                        # (first only decreases, learned_until only grows).
                        entry.established = True
                if normal:
                    if action == "read":
                        covered = True
                        for target in targets:
                            if not (isinstance(target, tuple) and len(target) == 3):
                                covered = False  # the models read it as it is
                                break
                            parts = cython.cast(tuple, target)
                            space = parts[0]
                            start = parts[1]
                            count = parts[2]
                            if space == entry.ranges_space and (
                                entry.ranges_action == "read"
                            ):
                                addresses = entry.ranges
                            else:
                                addresses = entry.address_set("read", space)
                                if addresses is None:
                                    covered = False
                                    break
                            # Ranges.covers, written out.
                            i = run_after(addresses.starts, start) - 1
                            if i < 0 or addresses.ends[i] < start + count:
                                covered = False
                                break
                        if covered:
                            emitted = []
                        else:
                            emitted = self._new_read_range(message, entry)
                    elif self._served_normally(entry, ts):
                        if action == "write":
                            covered = True
                            for space, start, count in targets:
                                addresses = entry.address_set("write", space)
                                if addresses is None or not addresses.covers(
                                    start, start + count
                                ):
                                    covered = False
                                    break
                            if covered:
                                source = value_source(targets, fields)
                                if source is None:
                                    values = None
                                else:
                                    slot = rel.values.get(source[0])
                                    values = _known_values(rel, source, slot)
                                if values is not _OUT:
                                    ends = entry.clock_key[0]
                                    self._writers_of(ends[1]).add(ends[0])
                                    emitted = []
                        else:
                            emitted = []
                elif action == "read":
                    emitted = self._fresh_repeat(message, entry, ts, targets)
                    covered = emitted is not None
            if emitted is not None:
                if entry.request:
                    base.learn_request(
                        entry, ts, action, targets, fields, values, covered, slot
                    )
                    if entry.stats.gaps[0]:
                        cadence = entry.cadence
                        if cadence is None:
                            cadence = self._cadence_of(entry)
                        cadence.note(ts)
                else:
                    base.learn_response(
                        entry, ts, action, targets, fields, values, slot
                    )

        # -- the general path: the models decide ------------------------------
        if emitted is None:
            self._values = False
            emitted = self._check(message)
            if entry is None:
                entry = base.entry(message, key)
            base.learn_entry(entry, message, self._values)
            self._track(message, entry)
        if self._covert and entry.fast and (
            action == "write" if entry.request else action == "read"
        ):
            carried = self._carry(message, entry, ts, targets, fields, source, slot)
            if carried is not None:
                alert = self._raise(
                    message, carried[0], carried[1], carried[2], carried[3], carried[4]
                )
                if alert is not None:
                    emitted.append(alert)
        cadence = entry.cadence
        if cadence is None:
            cadence = self._cadence_of(entry)
        if not cadence.dirty:
            cadence.dirty = True
            self._cadence_dirty.append(cadence)
        if self._more_models:
            # The models kept in links, surge and points: a message of a flow
            # whose ends are known, with no item_values, costs two look-ups here
            # (its flood window is kept in its cache entry).
            found = None
            links = self._links
            if links is not None and not links.seen_flow(flow, src, dst, ts):
                found = links.check(message, self._normal)
            floods = self._floods
            if floods is not None and entry.rated:
                window = entry.flood
                if window is None or window.generation != floods.generation:
                    window = entry.flood = floods.window(
                        src_ip, dst_ip, protocol, ts, base
                    )
                flood = floods.count(message, window, ts, action)
                if flood is not None:
                    found = [flood] if found is None else found + [flood]
            if self._points is not None and "item_values" in fields:
                points = self._points.check(message)
                if points:
                    found = points if found is None else found + points
            if found:
                emitted += self._raise_all(message, found)
        if ts >= self._next_cadence_check:
            self._next_cadence_check = ts + CADENCE_CHECK_EVERY
            emitted.extend(self._check_cadence(ts))
        return emitted

    def _fresh_repeat(
        self, m: Message, entry, ts: float, targets
    ) -> list[dict[str, Any]] | None:
        """Score a read of known ranges (``targets``, those of ``m``) on a
        relationship first seen since learning, once its ot/new-peer alert is
        out and throttled: what :meth:`_check_ot_request` does for it (count
        the repeat, note the novelties for the scan model). None when it is
        any other case."""
        rel = entry.rel
        if self._normal(rel.first, rel.last, ts):
            return None  # a new service on a normal relationship: the models say
        clock_key = entry.clock_key
        key = clock_key[0]  # (client, server, protocol)
        # _throttled("ot/new-peer", key, ts), keeping the alert it finds.
        previous = self._throttle.get(("ot/new-peer", key))
        if previous is None:
            return None
        model = self.models.get("ot/new-peer")
        if model is None or not ts - previous["ts"] < model.throttle:
            return None
        for space, start, count in targets:
            addresses = entry.address_set("read", space)
            if addresses is None or not addresses.covers(start, start + count):
                return None
        if not self._served_normally(entry, ts):
            return None
        # What _raise does with a throttled finding: count it as a repeat.
        previous["repeats"] += 1
        frames = previous["evidence"].get("frames")
        if frames is not None and len(frames) < 20:
            frames.append(m.frame)
        client = key[0]
        server = key[1]
        found: list[tuple] = []
        self._note_scan(ts, client, ("server", server), found)
        stats = entry.stats
        if not self._normal(stats.first, stats.last, ts):
            self._note_scan(ts, client, ("service", server, clock_key[1]), found)
        return self._raise_all(m, found)

    def _new_read_range(self, m: Message, entry) -> list[dict[str, Any]]:
        """Score a read on a normal relationship and service that touches an
        address outside the learned ranges: what :meth:`_check_ot_request`
        does for it, without the models that cannot fire."""
        for space, start, count in m.targets:
            addresses = entry.address_set("read", space)
            if addresses is None:
                addresses = entry.rel.addresses["read", space] = Ranges()
            if addresses.add(start, start + count):
                break
        else:
            return []
        client, server = entry.clock_key[0][:2]
        found: list[tuple] = []
        target = m.targets[0]
        space, start, _ = target
        self._note_scan(m.ts, client, ("range", server, space, start), found)
        return self._raise_all(m, found)

    def _carry(self, m, entry, ts: float, targets, fields, source, slot):
        """The covert-channel model (:mod:`otdpi.learner.covert`): gather the
        values a read response or a write carries into their stream, judge a
        full window, count the verdict into the baseline and, once learning is
        over, return a finding for data where the baseline had none (or had it
        for less than ``accept_after``). ``source`` is the message's
        :func:`value_source` and ``slot`` the learned range of its target
        (``rel.values``) where already known, else False. The caller passes
        read responses and write requests only."""
        if source is False:
            source = value_source(targets, fields)
        if source is None:
            return None
        values = source[1]
        if type(values) is not list or len(values) < MIN_REGISTERS:
            return None
        if slot is False or slot is None:
            # Looked up before this message was learned, or not at all.
            slot = entry.rel.values.get(source[0])
        if slot is None:
            return None  # past the cap on learned ranges: not followed
        # The learned range of a target is one list for the whole run, so its
        # identity names the stream (reads and writes apart) without hashing
        # the target; the list itself is kept to tell a reused id.
        key = 2 * address_of(slot) + entry.request
        streams = self._streams
        found = streams.get(key)
        unit = fields.get("unit_id")
        if found is None or found[0] is not slot:
            # A stream is what recurs: a target read or written once (a scan,
            # a one-off) is only noted. Counted within the capture, not from
            # the baseline, so that captures learned apart and merged give
            # the verdicts of learning them in one run.
            if len(streams) >= MAX_STREAMS:
                streams.clear()
            streams[key] = (slot, None)
            return None
        stream = found[1]
        if stream is None:
            stream = Stream(unit)
            streams[key] = (slot, stream)
        if unit != stream.unit:
            stream = stream.of_unit(unit)
        rows = stream.add(values)
        if rows is None:
            return None
        target = source[0]
        data, width, bits = judge(rows)
        carrying = is_data(data, width)
        stream.judged(carrying)
        learned = entry.rel.carriers
        verdicts = learned.get(target)
        if verdicts is None:
            if len(learned) >= MAX_VALUE_RANGES:
                return None
            verdicts = learned[target] = [0, 0, None]
        if not carrying:
            verdicts[1] += 1
            return None
        first = verdicts[2]
        verdicts[0] += 1
        if first is None or ts < first:
            verdicts[2] = ts
        if self.learning:
            return None
        if first is None:
            score = 75
            since = ", which they never did before"
        elif ts - first >= self.accept_after:
            return None  # data-like for long enough to be accepted as normal
        else:
            score = 55
            since = f", as they have for {describe_span(ts - first)}"
        client, server, protocol = entry.clock_key[0]
        space, start, count = target
        where = _describe_range(space, start, count)
        if entry.request:
            what = f"{client} wrote {where} on {server} with"
        else:
            what = f"{server} answered {client}'s reads of {where} with"
        return (
            "ot/covert-channel",
            (client, server, protocol, space, start, count),
            score,
            f"{what} values that change completely at every message, like a "
            f"data stream ({data} of {width} registers over the last {WINDOW}: "
            f"up to {bits} bits, evenly spread, no continuity), not a process; "
            f"data may be hidden in them (a covert channel){since}",
            {
                "targets": [[space, start, count]],
                "registers": width,
                "data_like": data,
                "window": WINDOW,
                "bits": bits,
            },
        )

    def _served_normally(self, entry, ts: float) -> bool:
        """Whether the server of ``entry`` serves its protocol normally (so a
        request on it raises no ot/new-protocol); False when unsure."""
        served = entry.served
        if served is None:
            _, server, protocol = entry.clock_key[0]
            dev = self.baseline.devices.get(server)
            if dev is None:
                return True  # no device index: the model has nothing to compare
            served = dev.protocols.get((protocol, "server"))
            if served is None:
                return False
            entry.served = served  # updated in place, never replaced
        return self._normal(served[1], served[2], ts)

    def tick(self, ts: float) -> list[dict[str, Any]]:
        """Let the clock reach ``ts`` with no message; return new alerts.

        The time-driven models (a polling that stopped) otherwise look only
        when a message arrives; a live watch calls this while the network is
        silent, with the wall-clock time its capture timestamps use. Nothing
        happens while learning, or when ``ts`` is not past the last message.
        """
        if self.learning or ts <= self._last_ts or self.baseline.learned_until is None:
            return []
        if ts < self._next_cadence_check:
            return []
        self._next_cadence_check = ts + CADENCE_CHECK_EVERY
        return self._check_cadence(ts)

    def finish(self) -> None:
        """End of the run: bring the baseline's device index up to date."""
        if self.learning and self.learn_until is not None:
            # The run ended inside the learning period: all of it was learning.
            self.baseline.learned_until = max(
                self.baseline.learned_until or 0.0, self._last_ts
            )
        self.baseline.finish()

    # -- run-time tracking (not baseline) -------------------------------------------

    def _track(self, message: Message, entry) -> None:
        if message.kind == "response":
            return
        protocol = message.protocol
        if protocol == "tls" and message.service == "application_data":
            # Bursts of records (one ping split over records) count as one.
            times = self._beacon_flows.get(message.flow)
            if times is None:
                times = self._beacon_flows[message.flow] = deque(maxlen=12)
            if not times or message.ts - times[-1] > 1.0:
                times.append(message.ts)
            return
        if message.kind == "event" and message.service == "connection":
            key = (message.src.ip, message.dst.ip, message.dst.port)
            times = self._connections.get(key)
            if times is None:
                times = self._connections[key] = deque(maxlen=12)
            times.append(message.fields.get("started", message.ts))
            return
        if protocol in IT_PROTOCOLS:
            return
        if entry.stats.gaps[0] == 0:
            return
        cadence = entry.cadence
        if cadence is None:
            cadence = self._cadence_of(entry)
        cadence.note(message.ts)

    def _cadence_of(self, entry) -> Cadence:
        """The cadence run state of an entry's relation service, kept in the entry."""
        cadence = entry.cadence = self._cadence.of(entry.clock_key, entry.stats)
        return cadence

    # -- normality --------------------------------------------------------------

    def _normal(self, first: float, last: float, ts: float) -> bool:
        if ts - last > self.forget_after:
            return False
        learned = self.baseline.learned_until
        return (
            learned is not None and first <= learned
        ) or ts - first >= self.accept_after

    # -- the models -----------------------------------------------------------------

    def _check(self, m: Message) -> list[dict[str, Any]]:
        kind = m.kind
        protocol = m.protocol
        base = self.baseline
        if kind == "response":
            client, server = m.dst.ip, m.src.ip
        else:
            client, server = m.src.ip, m.dst.ip
        rel = base.relations.get((client, server, protocol))
        found: list[tuple] = []  # (model, key, score, explanation, evidence, extra ids)

        if protocol in IT_PROTOCOLS:
            if kind == "event" and m.service == "connection":
                self._check_connection(m, client, server, found)
            self._check_it(m, client, server, rel, found)
        elif kind == "response":
            if m.action == "read" and m.targets and rel is not None:
                self._check_values(m, client, server, rel, found, written=False)
        else:
            self._check_ot_request(m, client, server, rel, found)
        if not found:
            return []
        return self._raise_all(m, found)

    def _check_ot_request(self, m, client, server, rel, found) -> None:
        ts = m.ts
        base = self.baseline
        protocol = m.protocol
        action = m.action
        fresh_rel = rel is None or not self._normal(rel.first, rel.last, ts)
        name = service_key(m)
        stats = rel.services.get(name) if rel is not None else None
        new_service = stats is None or not self._normal(stats.first, stats.last, ts)
        if not fresh_rel and not new_service and action == "read":
            self._note_new_reads(m, ts, client, server, rel, found)
            return  # the fast path of normal polling

        specific = False
        server_dev = base.devices.get(server)
        if fresh_rel:
            score = 60 + (10 if client not in base.devices else 0)
            key = (client, server, protocol)
            if self._throttled("ot/new-peer", key, ts):
                explanation = None  # a repeat: only counted, never described
            else:
                role = "a device"
                if server_dev is not None:
                    for _, served_as in server_dev.protocols:
                        if served_as == "server":
                            role = "a known server"
                            break
                explanation = (
                    f"{client} talked {protocol} to {role} {server} for the first "
                    f"time ({m.service})"
                )
            found.append(("ot/new-peer", key, score, explanation, {}))
            self._note_scan(ts, client, ("server", server), found)
        if server_dev is not None:
            served = server_dev.protocols.get((protocol, "server"))
            others = None
            if served is None or not self._normal(served[1], served[2], ts):
                others = []
                for other, served_as in server_dev.protocols:
                    if served_as == "server" and other != protocol:
                        others.append(other)
            if others:
                found.append(
                    (
                        "ot/new-protocol",
                        (server, protocol),
                        55,
                        f"{server} answered {protocol} for the first time; it "
                        f"served only {', '.join(sorted(others))} before",
                        {},
                    )
                )

        if action == "write":
            specific = self._check_write(m, client, server, rel, found)
            self._writers_of(server).add(client)
            if m.targets and rel is not None:
                self._check_values(m, client, server, rel, found, written=True)
        elif action == "control" and new_service:
            specific = True
            lowered = name.lower()
            if "restart" in lowered or "reset" in lowered or "reboot" in lowered:
                model = "ot/restart"
                what = "a restart"
            elif "stop" in lowered or "mode" in lowered or "listen_only" in lowered:
                model = "ot/cpu-stop"
                what = "a stop or mode change"
            else:
                model = "ot/first-control"
                what = "a control command"
            found.append(
                (
                    model,
                    (client, server, name),
                    MODELS[model].base_score,
                    f"{client} sent {what} ({name}) to {server}; never seen on "
                    f"this relationship",
                    {},
                )
            )
        elif action == "program" and new_service:
            specific = True
            lowered = name.lower()
            if "upload" in lowered:
                model, what = "ot/program-upload", "uploaded a program from"
            elif "delete" in lowered:
                model, what = "ot/block-delete", "deleted a program block on"
            else:
                model, what = "ot/program-download", "downloaded a program to"
            found.append(
                (
                    model,
                    (client, server, name),
                    MODELS[model].base_score,
                    f"{client} {what} {server} ({name}) for the first time",
                    {},
                )
            )
        elif action == "identify" and new_service:
            specific = True
            score = 65 + (10 if fresh_rel else 0)
            found.append(
                (
                    "ot/recon-identify",
                    (client, server, name),
                    score,
                    f"{client} read the identity of {server} ({name}); it never "
                    f"did before",
                    {},
                )
            )
            self._note_scan(ts, client, ("identify", server), found)
        elif action == "read" and rel is not None:
            self._note_new_reads(m, ts, client, server, rel, found)

        if new_service and not fresh_rel and not specific:
            found.append(
                (
                    "ot/new-service",
                    (client, server, name),
                    45,
                    f"{client} used {m.protocol} {name} on {server} for the first time",
                    {},
                )
            )
        if new_service:
            self._note_scan(ts, client, ("service", server, name), found)

    def _note_new_reads(self, m, ts: float, client, server, rel, found) -> None:
        """Fold the read ranges of ``m`` into ``rel``; the scan model notes the
        first target when one of them held an address never read."""
        targets = m.targets
        for space, start, count in targets:
            if rel.add_range("read", space, start, count):
                space, start, _ = targets[0]
                self._note_scan(ts, client, ("range", server, space, start), found)
                return

    def _check_write(self, m, client, server, rel, found) -> bool:
        base = self.baseline
        raised = False
        for space, start, count in m.targets:
            known = rel.addresses.get(("write", space)) if rel is not None else None
            if known is not None and known.covers(start, start + count):
                continue
            wrote_before = rel is not None and rel.actions.get("write", 0) > 0
            # Role-aware: a client that already writes this table on this server
            # (a master, an operator station) writing a new address of it scores
            # below the threshold; a new table 55; a client that never wrote 80.
            if known is not None and wrote_before:
                score = 35
            else:
                score = 55 if wrote_before else 80
            key = (client, server, space, start, count)
            if self._dropped("ot/first-write", key, score):
                self._note_scan(m.ts, client, ("write", server, space, start), found)
                raised = True
                continue
            writers = sorted([w for w in self._writers_of(server) if w != client])
            learned = describe_span(max(0.0, m.ts - (base.first or m.ts)))
            if writers and wrote_before:
                who = (
                    f"it wrote other addresses before, as did {', '.join(writers[:3])}"
                )
            elif wrote_before:
                who = "it wrote other addresses before"
            elif writers:
                who = (
                    f"only {', '.join(writers[:3])} "
                    f"{'has' if len(writers) == 1 else 'have'} written to it "
                    f"in {learned}"
                )
            else:
                who = f"nobody has written to it in {learned}"
            where = _describe_range(space, start, count)
            found.append(
                (
                    "ot/first-write",
                    key,
                    score,
                    f"{client} wrote {where} on {server} for the first time; {who}",
                    {"targets": [[space, start, count]]},
                )
            )
            self._note_scan(m.ts, client, ("write", server, space, start), found)
            raised = True
        return raised

    def _check_values(self, m, client, server, rel, found, written) -> None:
        found_range = self._values = value_range(m)
        if found_range is None:
            return
        target, value_lo, value_hi = found_range
        slot = rel.values.get(target)
        if slot is None or slot[0] < VALUE_MIN_OBSERVATIONS:
            return
        n, lo, hi = slot
        margin = max(1, (hi - lo) // 2)
        if lo - margin <= value_lo and value_hi <= hi + margin:
            return
        value = value_hi if value_hi > hi + margin else value_lo
        verb = "wrote" if written else "read back"
        who = client if written else server
        score = 60 if written else 40
        where = _describe_range(*target)
        found.append(
            (
                "ot/value-out-of-range",
                (server,) + tuple(target),
                score,
                f"{who} {verb} {value} in {where} on {server}; learned range "
                f"{lo}\u2013{hi} over {n} messages",
                {"targets": [list(target)], "value": value},
            )
        )

    def _note_scan(self, ts: float, client, novelty, found) -> None:
        """The scan model: ``client`` did ``novelty`` at ``ts``; a finding in
        ``found`` when that makes :data:`SCAN_THRESHOLD` in the window."""
        novelties = self._scan.get(client)
        if novelties is None:
            novelties = self._scan[client] = Novelties(("ot/scan", (client,)))
        if novelties.note(ts, novelty) < SCAN_THRESHOLD:
            return  # fewer, or nothing new noted
        previous = self._throttle.get(novelties.key)
        if previous is not None and ts - previous["ts"] < _SCAN_THROTTLE:
            previous["repeats"] += 1  # still scanning: no need to describe it again
            return
        counts = novelties.counts
        servers = {n[1] for n in counts}
        kind = "servers" if len(servers) >= SCAN_THRESHOLD else "addresses or functions"
        found.append(
            (
                "ot/scan",
                (client,),
                75,
                f"{client} touched {len(counts)} new {kind} on "
                f"{len(servers)} device(s) within {SCAN_WINDOW:.0f} s",
                {},
            )
        )

    def _writers_of(self, server: str) -> set[str]:
        """Clients that have written to ``server`` (kept up to date as writes pass)."""
        writers = self._writers.get(server)
        if writers is None:
            writers = self._writers[server] = {
                c
                for (c, s, _), r in self.baseline.relations.items()
                if s == server and r.actions.get("write")
            }
        return writers

    def _check_connection(self, m, client, server, found) -> None:
        """A flow between two devices that never talked, one of them industrial."""
        fields = m.fields
        application = fields.get("application")
        if application is not None and application not in IT_PROTOCOLS:
            return  # that protocol's own messages are scored as they come
        if is_external(server) or _is_group_address(server):
            return  # the IT models judge external endpoints
        if self._normal_pair(client, server, fields.get("started", m.ts)):
            return
        base = self.baseline
        industrial = [
            ip for ip in (client, server) if _is_industrial(base.devices.get(ip))
        ]
        if not industrial:
            return
        what = application or f"unidentified {m.protocol}"
        found.append(
            (
                "ot/new-peer",
                (client, server, m.protocol),
                65,
                f"{client} opened a {what} connection to {server} port "
                f"{fields.get('server_port')} ({fields.get('payload_bytes')} bytes);"
                f" the two never talked before and {industrial[0]} is an "
                f"industrial device",
                {},
            )
        )

    def _normal_pair(self, a: str, b: str, ts: float) -> bool:
        for x, y in ((a, b), (b, a)):
            dev = self.baseline.devices.get(x)
            peer = dev.peers.get(y) if dev is not None else None
            if peer is not None and self._normal(peer[2], peer[3], ts):
                return True
        return False

    # -- IT side ------------------------------------------------------------------

    def _check_it(self, m, client, server, rel, found) -> None:
        ts = m.ts
        base = self.baseline
        external = is_external(server) and not is_external(client)
        if not external:
            return
        dev = base.devices.get(server)
        rare = dev is None or not self._normal(dev.first, dev.last, ts)
        if not rare:
            return
        port = m.dst.port if m.kind != "response" else m.src.port
        extra = () if port in (443, 80, 8443) else ("T1571",)
        fields = m.fields
        if m.kind != "response":
            found.append(
                (
                    "it/rare-external",
                    (client, server),
                    45,
                    f"{client} connected to {server}:{port}, an external endpoint "
                    f"never seen before",
                    {"extra": extra},
                )
            )
        certificate = fields.get("certificate") if m.protocol == "tls" else None
        if isinstance(certificate, dict):
            sni = fields.get("sni")
            reason = None
            if certificate.get("self_signed"):
                reason = (
                    f"a self-signed certificate (subject = issuer = "
                    f"{certificate.get('subject')})"
                )
            elif certificate.get("matches_sni") is False:
                reason = (
                    f"a certificate for {certificate.get('subject')} unrelated "
                    f"to the server name {sni}"
                )
            if reason:
                found.append(
                    (
                        "it/tls-self-signed",
                        (client, server),
                        80,
                        f"{server}:{port} (rare, external) presented {reason} "
                        f"to {client}",
                        {"extra": extra},
                    )
                )
        if m.protocol == "tls" and m.service == "application_data":
            times = self._beacon_flows.get(m.flow)
            period = _periodic(times)
            if period is not None:
                found.append(
                    (
                        "it/beacon",
                        (client, server, "in-connection"),
                        80,
                        f"{client} sends a message to {server}:{port} every "
                        f"{period:.0f} s inside one TLS connection ({len(times)} so "
                        f"far)",
                        {"extra": extra},
                    )
                )
        if m.kind == "event" and m.service == "connection":
            times = self._connections.get((client, server, m.dst.port))
            period = _periodic(times)
            if period is not None:
                found.append(
                    (
                        "it/beacon",
                        (client, server, "reconnect"),
                        80,
                        f"{client} reconnects to {server}:{port} every "
                        f"{period:.0f} s (the last {BEACON_MIN_INTERVALS + 1} "
                        "attempts)",
                        {"extra": extra},
                    )
                )

    # -- cadence ------------------------------------------------------------------

    def _check_cadence(self, ts: float) -> list[dict[str, Any]]:
        """The ot/cadence-stop and ot/cadence-change models (see
        :mod:`otdpi.learner.cadence`), once per :data:`CADENCE_CHECK_EVERY`
        seconds of capture time."""
        out = []
        for found in self._cadence.sweep(self.baseline.relations, ts):
            alert = self._raise_at(*found)
            if alert:
                out.append(alert)
        return out

    # -- alerts -------------------------------------------------------------------

    def _throttled(self, model_name: str, key: tuple, ts: float) -> bool:
        """Whether a finding at ``ts`` would only count as a repeat in :meth:`_raise`
        (an earlier alert of the same model and key is within its throttle)."""
        previous = self._throttle.get((model_name, key))
        if previous is None:
            return False
        model = self.models.get(model_name)
        return model is not None and ts - previous["ts"] < model.throttle

    def _dropped(self, model_name: str, key: tuple, score: int) -> bool:
        """Whether :meth:`_raise` would drop this finding without a trace (below
        the model's threshold, and no earlier alert of it to count a repeat on),
        so that describing it can be skipped."""
        model = self.models.get(model_name)
        return model is None or (
            max(0, min(100, int(score))) < model.threshold
            and (model_name, key) not in self._throttle
        )

    def _raise_all(self, m: Message, found: list) -> list[dict[str, Any]]:
        """The alerts of ``found`` (findings as :meth:`_raise` takes them) that
        are not throttled or dropped."""
        raised = []
        for finding in found:
            alert = self._raise(
                m, finding[0], finding[1], finding[2], finding[3], finding[4]
            )
            if alert is not None:
                raised.append(alert)
        return raised

    def _raise(self, m: Message, model_name, key, score, explanation, evidence):
        model = self.models.get(model_name)
        previous = self._throttle.get((model_name, key))
        if previous is not None:
            if model is not None and m.ts - previous["ts"] < model.throttle:
                previous["repeats"] += 1
                frames = previous["evidence"].get("frames")
                if frames is not None and len(frames) < 20:
                    frames.append(m.frame)
                return None
        if model is None or max(0, min(100, int(score))) < model.threshold:
            return None  # what _raise_at would decide, before building evidence
        extra = evidence.pop("extra", ())
        client, server = (m.dst, m.src) if m.kind == "response" else (m.src, m.dst)
        full = {
            "frames": [m.frame],
            "client": client.ip,
            "server": server.ip,
            "server_port": server.port,
            "protocol": m.protocol,
            "service": m.service,
            "targets": [list(t) for t in m.targets],
            **evidence,
        }
        return self._raise_at(
            m.ts,
            m.ts,
            model_name,
            key,
            score,
            explanation,
            full,
            extra,
            device=server.ip,
        )

    def _raise_at(
        self,
        ts,
        event_ts,
        model_name,
        key,
        score,
        explanation,
        evidence,
        extra,
        device=None,
    ):
        model = self.models.get(model_name)
        if model is None:
            return None
        score = max(0, min(100, int(score)))
        if score < model.threshold:
            return None
        throttle_key = (model_name, key)
        previous = self._throttle.get(throttle_key)
        if previous is not None and ts - previous["ts"] < model.throttle:
            previous["repeats"] += 1
            frames = previous["evidence"].get("frames")
            if frames is not None and len(frames) < 20:
                frames.extend(evidence.get("frames", ()))
            return None
        alert = {
            "ts": ts,
            "time": _iso(ts),
            "event_ts": event_ts,
            "device": device or evidence.get("server"),
            "model": model_name,
            "score": score,
            "techniques": techniques_of(model, tuple(extra)),
            "evidence": evidence,
            "explanation": explanation,
            "repeats": 0,
        }
        self._throttle[throttle_key] = alert
        self.alerts.append(alert)
        return alert


_OUT = object()  # what _known_values gives for values out of the learned range


def _known_values(rel, source: tuple, slot):
    """:func:`value_range` of a message on ``rel`` (None, or not computed where
    neither learning nor scoring would read it), or ``_OUT`` when the values
    fall outside the range learned for their target (the model must look).
    ``slot`` is the learned range of the target (``rel.values``), if any."""
    learned = rel.values
    if slot is None:
        if len(learned) >= MAX_VALUE_RANGES:
            return None  # no slot and no room for one: nothing reads them
        return range_of(source)
    found = range_of(source)
    if found is None or slot[0] < VALUE_MIN_OBSERVATIONS:
        return found
    lo = slot[1]
    hi = slot[2]
    margin = max(1, (hi - lo) // 2)
    if found[1] >= lo - margin and found[2] <= hi + margin:
        return found
    return _OUT


def _keyed_by_mac(message: Message) -> Message:
    """A layer-2 message whose ends without an IP are named ``mac:<MAC>``.

    Devices and relationships are keyed by IP address; a GOOSE publisher has
    none, so its MAC stands in, spelled as the inventory keys such an asset.
    """
    src, dst = message.src, message.dst
    if src.ip is None:
        src = src._replace(ip=f"mac:{src.mac}")
    if dst.ip is None:
        dst = dst._replace(ip=f"mac:{dst.mac}")
    return message._replace(src=src, dst=dst)


def _is_group_address(ip: str) -> bool:
    """Broadcast or multicast: no relationship with one peer."""
    if ip.startswith("mac:"):
        # The least significant bit of the first octet marks a group MAC.
        try:
            return bool(int(ip[4:6], 16) & 1)
        except ValueError:
            return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return address.is_multicast or (address.version == 4 and ip.endswith(".255"))


def _is_industrial(dev) -> bool:
    return dev is not None and any(p not in IT_PROTOCOLS for (p, _) in dev.protocols)


def _periodic(times) -> float | None:
    """Mean interval of ``times`` when they are regular enough to be a beacon."""
    if times is None or len(times) < BEACON_MIN_INTERVALS + 1:
        return None
    # The most recent run only: an earlier long session must not hide a new rhythm.
    ordered = sorted(times)[-(BEACON_MIN_INTERVALS + 1) :]
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    mean = sum(gaps) / len(gaps)
    if mean < BEACON_MIN_PERIOD:
        return None
    std = (sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5
    return mean if std / mean <= BEACON_MAX_CV else None


def connection_event(flow) -> Message:
    """A Message (protocol ``tcp``/``udp``, service ``connection``) for an ended flow.

    It lets the learner see flows no dissector claimed and connection attempts
    that were refused, through the same envelope as every other message.
    """
    answered = flow.payload_bytes > 0 or flow.packets > 2
    return Message(
        flow.last_ts,
        flow.last_frame,
        flow.id,
        Endpoint(flow.client.ip, flow.client.port, flow.client.mac),
        Endpoint(flow.server.ip, flow.server.port, flow.server.mac),
        flow.transport,
        "event",
        "connection",
        None,
        "session",
        (),
        {
            "server_port": flow.server.port,
            "started": flow.first_ts,
            "duration": round(flow.last_ts - flow.first_ts, 6),
            "packets": flow.packets,
            "payload_bytes": flow.payload_bytes,
            "application": flow.protocol,
            "answered": answered,
        },
        {},
        STATUS_OK,
        (),
    )
