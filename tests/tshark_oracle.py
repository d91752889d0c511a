"""Runs tshark as a test oracle: each frame's decoded layers, as plain Python values.

Wireshark's dissectors are the most widely checked second opinion on most ICS
protocols, so the agreement tests compare our Messages with what tshark decodes
from the same capture. This module knows nothing of any one protocol: it runs
``tshark -T json`` with the layers asked for and turns each frame into an ordered
list of :class:`Layer`. Order matters: a TCP segment that carries three Modbus
ADUs shows up as ``mbtcp, modbus, mbtcp, modbus, mbtcp, modbus``, and only the
order tells which body belongs to which header. tshark writes repeated layers
as repeated JSON keys, which :func:`json.loads` would collapse, so the output is
read as key/value pairs.

Runs are cached for the test session, keyed by file and options, and
:func:`prefetch` starts several at once so that the tshark processes work on
the spare cores while the tests run otdpi in the main process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

TSHARK = shutil.which("tshark")


class Layer(NamedTuple):
    """One protocol layer of a frame: every field under it, nested fields hoisted.

    ``fields`` maps a field name (``modbus.regval_uint16``) to its values in the
    order tshark shows them; a field found in sub-trees (one per register, say)
    collects all of them.
    """

    name: str
    fields: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


class Frame(NamedTuple):
    """A frame that passed the display filter: its 1-based number and its layers."""

    number: int
    layers: tuple[Layer, ...]


class Request(NamedTuple):
    """What to ask tshark for; hashable, so that it keys the session cache."""

    path: str
    layers: tuple[str, ...]
    display_filter: str
    preferences: tuple[tuple[str, str], ...] = ()
    # "Decode As" rules (tshark -d), e.g. "tcp.port==5000,hsms", for
    # dissectors that have no port preference of their own.
    decode_as: tuple[str, ...] = ()


class TsharkError(RuntimeError):
    """tshark is missing, failed, or printed something that is not its JSON."""


def available() -> bool:
    return TSHARK is not None


def version() -> str:
    """tshark's version, e.g. ``4.0.17``."""
    if TSHARK is None:
        raise TsharkError("tshark is not installed")
    first_line = subprocess.run(
        [TSHARK, "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    # "TShark (Wireshark) 4.0.17 (Git v4.0.17 packaged as ...)"
    return first_line.split()[2]


def request(
    path: str | os.PathLike,
    layers: Iterable[str],
    display_filter: str,
    preferences: Mapping[str, str] | None = None,
    decode_as: Iterable[str] = (),
) -> Request:
    """Build a :class:`Request`; ``preferences`` are tshark ``-o`` settings and
    ``decode_as`` its ``-d`` rules."""
    prefs = tuple(sorted((preferences or {}).items()))
    return Request(os.fspath(path), tuple(layers), display_filter, prefs, tuple(decode_as))


def decode(req: Request) -> list[Frame]:
    """The frames tshark shows for ``req``, from the session cache when possible."""
    return _future(req).result()


def prefetch(requests: Iterable[Request]) -> None:
    """Start tshark on each request in the background; :func:`decode` collects."""
    for req in requests:
        _future(req)


_cache: dict[Request, Future] = {}
_cache_lock = threading.Lock()
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)


def _future(req: Request) -> Future:
    with _cache_lock:
        if req not in _cache:
            _cache[req] = _pool.submit(_run, req)
        return _cache[req]


def _run(req: Request) -> list[Frame]:
    if TSHARK is None:
        raise TsharkError("tshark is not installed")
    # "frame" is always asked for, since it carries frame.number.
    command = [TSHARK, "-n", "-r", req.path, "-Y", req.display_filter, "-T", "json"]
    command += ["-J", " ".join(("frame", *req.layers))]
    for name, value in req.preferences:
        command += ["-o", f"{name}:{value}"]
    for rule in req.decode_as:
        command += ["-d", rule]
    done = subprocess.run(command, capture_output=True, check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise TsharkError(f"{' '.join(command)} failed: {message}")
    try:
        packets = json.loads(done.stdout, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise TsharkError(f"tshark printed no JSON for {req.path}: {exc}") from exc
    return [_frame(packet, set(req.layers)) for packet in packets]


class _Pairs(list):
    """A JSON object kept as its ordered (key, value) pairs, duplicates included."""


def _get(pairs: _Pairs, key: str):
    for name, value in pairs:
        if name == key:
            return value
    raise TsharkError(f"tshark JSON lacks {key!r}")


def _frame(packet: _Pairs, wanted: set[str]) -> Frame:
    layers = _get(_get(packet, "_source"), "layers")
    number = None
    kept = []
    for name, value in layers:
        if name == "frame":
            number = int(_hoist(value)["frame.number"][0])
        elif name in wanted:
            # A plain JSON array would mean tshark grouped the repeats itself.
            repeats = value if type(value) is list else [value]
            kept.extend(Layer(name, _hoist(one)) for one in repeats)
    if number is None:
        raise TsharkError("a tshark packet has no frame.number")
    return Frame(number, tuple(kept))


def _hoist(node, into: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """Collect every leaf field under ``node`` into one name -> values dict."""
    fields: dict[str, list[str]] = {} if into is None else into
    if not isinstance(node, _Pairs):
        return fields
    for name, value in node:
        if isinstance(value, _Pairs):
            _hoist(value, fields)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, _Pairs):
                    _hoist(item, fields)
                else:
                    fields.setdefault(name, []).append(str(item))
        else:
            fields.setdefault(name, []).append(str(value))
    return fields
