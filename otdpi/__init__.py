"""otdpi: deep packet inspection for industrial, medical and fab networks.

The three entry points of the library, each usable alone:

* :func:`dissect` decodes one protocol data unit from bytes;
* :func:`read` streams the Messages of capture files;
* :func:`build_inventory` builds the asset inventory of capture files.

(It is not called ``inventory``: that name is the :mod:`otdpi.inventory`
module, which would replace a function of that name once imported.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from otdpi.errors import OtdpiError
from otdpi.message import Endpoint, Finding, Message, Status, Target

__version__ = "0.1.0"

__all__ = [
    "Endpoint",
    "Finding",
    "Message",
    "OtdpiError",
    "Status",
    "Target",
    "build_inventory",
    "dissect",
    "read",
]


def _paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list:
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def read(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    protocols: Iterable[str] | None = None,
) -> Iterator[Message]:
    """Stream the Messages of one or more capture files, in completion order.

    Parameters
    ----------
    paths
        a capture path or several (pcap, pcapng, optionally gzip-compressed).
    protocols
        registry names to dissect; None means every installed dissector.

    Raises
    ------
    CaptureError
        a file cannot be read as a capture.
    """
    from otdpi.engine import Engine

    return Engine(protocols).read(_paths(paths))


def dissect(data: bytes, protocol: str, to_server: bool = True) -> list[Message]:
    """Decode the bytes of one direction of one protocol, without a capture.

    ``to_server`` says whether the bytes travel from client to server
    (requests) or back (responses). Units that are cut short at the end come
    back as one ``malformed`` message.

    >>> [m.service for m in dissect(bytes.fromhex("000100000006010300000002"), "modbus")]
    ['read_holding_registers']
    """
    from otdpi.dissector import FlowContext
    from otdpi.registry import get

    cls = get(protocol)
    flow = FlowContext(0, Endpoint("0.0.0.0"), Endpoint("0.0.0.0"), cls.transports[0])
    session = cls(flow)
    return session.feed(bytes(data), to_server, 0.0, 0) + session.close(0.0, 0)


def build_inventory(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    protocols: Iterable[str] | None = None,
):
    """Build the :class:`~otdpi.inventory.Inventory` of one or more capture files."""
    from otdpi.engine import Engine
    from otdpi.inventory import Inventory

    engine = Engine(protocols)
    result = Inventory()
    for path in _paths(paths):
        result.update(engine.messages(path), capture=os.fspath(path))
    return result
