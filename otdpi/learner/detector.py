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

import heapq
import ipaddress
import time
from bisect import bisect_right
from collections import deque
from functools import lru_cache
from typing import Any

from otdpi.learner.baseline import (
    IT_PROTOCOLS,
    MAX_VALUE_RANGES,
    Baseline,
    Ranges,
    range_of,
    service_key,
    value_range,
    value_source,
)
from otdpi.learner.links import LinkBindings
from otdpi.learner.models import MODELS, Model, techniques_of
from otdpi.learner.points import PointValues
from otdpi.learner.surge import FloodCounter
from otdpi.message import STATUS_OK, Endpoint, Message

# Limitation: learning and scoring are pure Python, about 4.5-5 us of CPU per
# message on the synthetic benchmark captures (random transactions or periodic
# polling), as much as dissecting a packet, so the learner is about half of
# dissect + learn + score there against the one-third target (31 % on the real
# polling of the Lemay capture). Learning alone already costs 2.6-2.9 us per
# message; measured and not adopted: learning repeats by the batch (42 % at
# best) and a Cython build with the hot classes as extension types (44 %). A
# native extension for the fast path, with its own data layout and this code
# kept as the reference it is tested against, would lift it (docs/learner.md).

SCAN_WINDOW = 60.0  # seconds over which one client's novelties add up
SCAN_THRESHOLD = 10  # distinct novelties in the window that make a scan
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


def _span(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def _iso(ts: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
        + f".{int(ts % 1 * 1e6):06d}Z"
    )


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
        self.models = models if models is not None else MODELS
        self.alerts: list[dict[str, Any]] = []
        self._throttle: dict[tuple, dict[str, Any]] = {}
        self._scan: dict[str, deque] = {}
        self._beacon_flows: dict[int, deque] = {}
        self._connections: dict[tuple, deque] = {}
        self._recent_gaps: dict[tuple, deque] = {}
        self._stopped: set[tuple] = set()
        self._writers: dict[str, set[str]] = {}
        self._periods: dict[tuple, float] = {}
        self._values = False  # value_range of the message being scored, once known
        self._next_cadence_check = 0.0
        # The cadence sweep looks only at what can have changed since the last
        # one (see _check_cadence): services learned since, services whose
        # silence may now be a stop (a heap of deadlines), and services whose
        # recent cadence was off the period at the last sweep.
        self._cadence_all = True  # the next sweep looks at every service
        self._cadence_dirty: set[tuple] = set()
        self._cadence_due: list[tuple[float, tuple]] = []
        self._cadence_deadline: dict[tuple, float] = {}
        self._cadence_off: set[tuple] = set()
        self._cadence_order: dict[tuple, tuple[int, int]] = {}
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

    # -- feeding ------------------------------------------------------------------

    def new_capture(self) -> None:
        """A new capture starts: request gaps never span two files."""
        base = self.baseline
        base.clock.reset()
        self._recent_gaps.clear()
        for entry in base._cache.values():
            entry.recent = None
        self._cadence_all = True

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
        (ts, _, _, src, dst, protocol, kind, service, _, action, targets, fields) = (
            message[:12]
        )
        if src.ip is None or dst.ip is None:
            message = _keyed_by_mac(message)
            src, dst = message.src, message.dst
        self.messages += 1
        if ts > self._last_ts:
            self._last_ts = ts
        base = self.baseline
        key = (src.ip, dst.ip, protocol, kind, service, fields.get("sub_function_name"))
        entry = base._cache.get(key)
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
                        recent = entry.recent
                        if recent is None:
                            recent = self._recent(entry)
                        recent.append(ts)
                else:
                    base.learn_response(entry, ts, action, targets, fields)
                links = self._links
                if links is not None and not links.seen_flow(message.flow, src, dst, ts):
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
                        values = _known_values(rel, source)
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
                        for space, start, count in targets:
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
                            i = bisect_right(addresses.starts, start) - 1
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
                                    values = _known_values(rel, source)
                                if values is not _OUT:
                                    client, server = entry.clock_key[0][:2]
                                    self._writers_of(server).add(client)
                                    emitted = []
                        else:
                            emitted = []
                elif action == "read":
                    emitted = self._fresh_repeat(message, entry, ts)
                    covered = emitted is not None
            if emitted is not None:
                if entry.request:
                    base.learn_request(
                        entry, ts, action, targets, fields, values, covered
                    )
                    if entry.stats.gaps[0]:
                        recent = entry.recent
                        if recent is None:
                            recent = self._recent(entry)
                        recent.append(ts)
                else:
                    base.learn_response(entry, ts, action, targets, fields, values)

        # -- the general path: the models decide ------------------------------
        if emitted is None:
            self._values = False
            emitted = self._check(message)
            if entry is None:
                entry = base.entry(message, key)
            base.learn_entry(entry, message, self._values)
            self._track(message, entry)
        self._cadence_dirty.add(entry.clock_key)
        if self._more_models:
            more = self._check_links_and_floods(message, ts, src, dst, kind, fields)
            if more:
                emitted += more
        if ts >= self._next_cadence_check:
            self._next_cadence_check = ts + CADENCE_CHECK_EVERY
            emitted.extend(self._check_cadence(ts))
        return emitted

    def _fresh_repeat(
        self, m: Message, entry, ts: float
    ) -> list[dict[str, Any]] | None:
        """Score a read of known ranges on a relationship first seen since
        learning, once its ot/new-peer alert is out and throttled: what
        :meth:`_check_ot_request` does for it (count the repeat, note the
        novelties for the scan model). None when it is any other case."""
        rel = entry.rel
        if self._normal(rel.first, rel.last, ts):
            return None  # a new service on a normal relationship: the models say
        (client, server, protocol), name = entry.clock_key
        key = (client, server, protocol)
        if not self._throttled("ot/new-peer", key, ts):
            return None
        for space, start, count in m.targets:
            addresses = entry.address_set("read", space)
            if addresses is None or not addresses.covers(start, start + count):
                return None
        if not self._served_normally(entry, ts):
            return None
        stats = entry.stats
        score = 60 + (10 if client not in self.baseline.devices else 0)
        found: list[tuple] = [("ot/new-peer", key, score, None, {})]
        self._note_scan(m, client, ("server", server), found)
        if not self._normal(stats.first, stats.last, ts):
            self._note_scan(m, client, ("service", server, name), found)
        raised = []
        for model_name, key, score, explanation, evidence in found:
            alert = self._raise(m, model_name, key, score, explanation, evidence)
            if alert is not None:
                raised.append(alert)
        return raised

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
        self._note_scan(m, client, ("range", server, target[0], target[1]), found)
        if not found:
            return []
        return [a for a in (self._raise(m, *f) for f in found) if a is not None]

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

    def _check_links_and_floods(self, m: Message, ts, src, dst, kind, fields):
        """The models of :mod:`~otdpi.learner.links`, :mod:`~otdpi.learner.surge`
        and :mod:`~otdpi.learner.points` (written values per server).

        ``ts`` to ``fields`` are those of ``m``, already unpacked by :meth:`feed`.
        The common message (of a flow whose ends are known, with no
        ``item_values``) costs two look-ups here and no call.
        """
        found = None
        links = self._links
        if links is not None and not links.seen_flow(m.flow, src, dst, ts):
            found = links.check(m, self._normal)
        if (
            self._floods is not None
            and kind != "response"
            and kind != "event"
            and m.protocol not in IT_PROTOCOLS
        ):
            flood = self._floods.observe(m, self.baseline)
            if flood is not None:
                found = (found or []) + [flood]
        if self._points is not None and "item_values" in fields:
            points = self._points.check(m)
            if points:
                found = (found or []) + points
        if not found:
            return ()
        return [a for a in (self._raise(m, *f) for f in found) if a is not None]

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
        recent = entry.recent
        if recent is None:
            recent = self._recent(entry)
        recent.append(message.ts)

    def _recent(self, entry):
        """The deque of recent request times of an entry's relation service."""
        recent = self._recent_gaps.get(entry.clock_key)
        if recent is None:
            recent = self._recent_gaps[entry.clock_key] = deque(maxlen=8)
        entry.recent = recent
        return recent

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
        raised = []
        for model_name, key, score, explanation, evidence in found:
            alert = self._raise(m, model_name, key, score, explanation, evidence)
            if alert is not None:
                raised.append(alert)
        return raised

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
            if m.targets and any(rel.add_range("read", *t) for t in m.targets):
                self._note_scan(
                    m,
                    client,
                    ("range", server, m.targets[0][0], m.targets[0][1]),
                    found,
                )
            return  # the fast path of normal polling

        specific = False
        server_dev = base.devices.get(server)
        if fresh_rel:
            score = 60 + (10 if client not in base.devices else 0)
            key = (client, server, protocol)
            if self._throttled("ot/new-peer", key, ts):
                explanation = None  # a repeat: only counted, never described
            else:
                known_server = server_dev is not None and any(
                    role == "server" for (_, role) in server_dev.protocols
                )
                role = "a known server" if known_server else "a device"
                explanation = (
                    f"{client} talked {protocol} to {role} {server} for the first "
                    f"time ({m.service})"
                )
            found.append(("ot/new-peer", key, score, explanation, {}))
            self._note_scan(m, client, ("server", server), found)
        if server_dev is not None:
            served = server_dev.protocols.get((protocol, "server"))
            if served is None or not self._normal(served[1], served[2], ts):
                others = [
                    p
                    for (p, r) in server_dev.protocols
                    if r == "server" and p != protocol
                ]
            else:
                others = None
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
            self._note_scan(m, client, ("identify", server), found)
        elif action == "read" and m.targets and rel is not None:
            if any(rel.add_range("read", *t) for t in m.targets):
                self._note_scan(
                    m,
                    client,
                    ("range", server, m.targets[0][0], m.targets[0][1]),
                    found,
                )

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
            self._note_scan(m, client, ("service", server, name), found)

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
                self._note_scan(m, client, ("write", server, space, start), found)
                raised = True
                continue
            writers = sorted(w for w in self._writers_of(server) if w != client)
            learned = _span(max(0.0, m.ts - (base.first or m.ts)))
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
            self._note_scan(m, client, ("write", server, space, start), found)
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

    def _note_scan(self, m, client, novelty, found) -> None:
        entry = self._scan.get(client)
        if entry is None:
            entry = self._scan[client] = (deque(), {})
        window, counts = entry
        ts = m.ts
        window.append((ts, novelty))
        counts[novelty] = counts.get(novelty, 0) + 1
        while ts - window[0][0] > SCAN_WINDOW:
            _, old = window.popleft()
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
        if len(counts) >= SCAN_THRESHOLD:
            previous = self._throttle.get(("ot/scan", (client,)))
            if (
                previous is not None
                and ts - previous["ts"] < MODELS["ot/scan"].throttle
            ):
                previous["repeats"] += 1  # still scanning: no need to describe it again
                return
            servers = {n[1] for n in counts}
            kind = (
                "servers"
                if len(servers) >= SCAN_THRESHOLD
                else "addresses or functions"
            )
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
        """The ot/cadence-stop and ot/cadence-change models, once per
        :data:`CADENCE_CHECK_EVERY` seconds of capture time.

        Looking at a service is idempotent while nothing of it changes, so a
        sweep looks only at the services that can give a different answer
        than at the last one: those learned since (``_cadence_dirty``), those
        whose silence may have become a stop (their deadline in
        ``_cadence_due`` has come; a little early is harmless), and those
        whose recent cadence was off their period (re-raised, as repeats, at
        every sweep). The first sweep, and the first after a new capture,
        look at every service. They are looked at in the order of the
        relations and their services, so alerts come out as a full sweep
        would give them.
        """
        base = self.baseline
        relations = base.relations
        if self._cadence_all:
            self._cadence_all = False
            keys = [
                (rel_key, name)
                for rel_key, rel in relations.items()
                if rel_key[2] not in IT_PROTOCOLS
                for name in rel.services
            ]
            self._cadence_order.clear()
        else:
            keys = self._cadence_dirty | self._cadence_off
            due = self._cadence_due
            while due and due[0][0] <= ts:
                deadline, key = heapq.heappop(due)
                if self._cadence_deadline.get(key) == deadline:
                    del self._cadence_deadline[key]
                    keys.add(key)
            keys = sorted(keys, key=self._cadence_rank)
        self._cadence_dirty.clear()
        out = []
        for key in keys:
            alert = self._cadence_of(key, ts)
            if alert:
                out.append(alert)
        return out

    def _cadence_rank(self, key: tuple) -> tuple[int, int]:
        """Where a full sweep would come to ``key``: (relation, service) order."""
        rank = self._cadence_order.get(key)
        if rank is None:
            order = self._cadence_order
            for i, (rel_key, rel) in enumerate(self.baseline.relations.items()):
                for j, name in enumerate(rel.services):
                    order[rel_key, name] = (i, j)
            rank = order.get(key, (len(order), 0))
        return rank

    def _cadence_of(self, clock_key: tuple, ts: float) -> dict[str, Any] | None:
        """One service's look in a cadence sweep; a new alert, if any."""
        (client, server, protocol), name = clock_key
        if protocol in IT_PROTOCOLS:
            return None
        rel = self.baseline.relations.get(clock_key[0])
        stats = None if rel is None else rel.services.get(name)
        self._cadence_off.discard(clock_key)
        if stats is None or stats.requests < 10:
            return None
        # The period last seen steady: a flood or a stall that is
        # being learned must not erase the period it departs from.
        period_key = (client, server, protocol, name)
        period = stats.period()
        if period is None or period_key in self._stopped:
            period = self._periods.get(period_key, period)
        elif not self._departing(period_key, period):
            self._periods[period_key] = period
        if period is None:
            return None
        recent = self._recent_gaps.get(clock_key)
        if recent is None:
            return None  # not polled in this run: nothing stopped in front of us
        key = period_key
        silent = ts - stats.last
        limit = max(10 * period, period + 30.0)
        if silent > limit:
            if key not in self._stopped:
                self._stopped.add(key)
                return self._raise_at(
                    ts,
                    stats.last,
                    "ot/cadence-stop",
                    key,
                    60,
                    f"{client} stopped polling {server} ({protocol} {name}, "
                    f"every {period:.1f} s until {_span(silent)} ago)",
                    {
                        "client": client,
                        "server": server,
                        "protocol": protocol,
                        "service": name,
                    },
                    (),
                )
            return None
        self._stopped.discard(key)
        # Looked at again when the silence may pass the limit (a little early,
        # so that rounding never makes it late).
        deadline = stats.last + limit * (1 - 1e-9) - 1e-6
        if self._cadence_deadline.get(clock_key) != deadline:
            self._cadence_deadline[clock_key] = deadline
            heapq.heappush(self._cadence_due, (deadline, clock_key))
        if len(recent) < recent.maxlen:
            return None
        mean = (recent[-1] - recent[0]) / (len(recent) - 1)
        if mean < period / 4 or mean > period * 4:
            self._cadence_off.add(clock_key)
            return self._raise_at(
                ts,
                recent[-1],
                "ot/cadence-change",
                key,
                50,
                f"{client} polls {server} ({protocol} {name}) every "
                f"{mean:.2f} s;"
                f" learned period {period:.2f} s",
                {
                    "client": client,
                    "server": server,
                    "protocol": protocol,
                    "service": name,
                },
                (),
            )
        return None

    def _departing(self, key: tuple, period: float) -> bool:
        """Whether the recent requests of ``key`` are off its remembered period."""
        remembered = self._periods.get(key)
        recent = self._recent_gaps.get((key[:3], key[3]))
        if remembered is None or recent is None or len(recent) < 2:
            return False
        mean = (recent[-1] - recent[0]) / (len(recent) - 1)
        return not remembered / 4 <= mean <= remembered * 4

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


def _known_values(rel, source: tuple):
    """:func:`value_range` of a message on ``rel`` (None, or not computed where
    neither learning nor scoring would read it), or ``_OUT`` when the values
    fall outside the range learned for their target (the model must look)."""
    learned = rel.values
    slot = learned.get(source[0])
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
