"""Finds dissector plugins and chooses one for a flow: port hint first, then probes.

Plugins are classes registered under the entry-point group ``otdpi.dissectors``
(otdpi's own live in the top-level ``dissectors`` package and register the same
way a third party's would). A port never decides on its own: a plugin whose
default port matches is probed first, then every other plugin that runs over
the flow's transport, so Modbus on port 5020 is found and TLS on port 502 is not
called Modbus.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib.metadata import entry_points

from otdpi.dissector import Dissector
from otdpi.errors import PluginError

ENTRY_POINT_GROUP = "otdpi.dissectors"


@cache
def available() -> dict[str, type[Dissector]]:
    """Every installed dissector class by its registry name."""
    found: dict[str, type[Dissector]] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
        except Exception as exc:  # a broken third-party plugin must not stop otdpi
            raise PluginError(f"dissector plugin {point.name!r} failed to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Dissector)):
            raise PluginError(f"plugin {point.name!r} is not a Dissector subclass")
        found[cls.name or point.name] = cls
    return found


def get(name: str) -> type[Dissector]:
    """The dissector class registered as ``name``."""
    plugins = available()
    try:
        return plugins[name]
    except KeyError:
        known = ", ".join(sorted(plugins)) or "none installed"
        raise PluginError(f"no dissector named {name!r} (installed: {known})") from None


class Selector:
    """Chooses the dissector for a new flow from its ports and first bytes.

    Parameters
    ----------
    only
        registry names to consider; None means every installed plugin.
    plugins
        dissector classes to use instead of the installed ones (tests, or a
        program that embeds its own dissectors).
    """

    def __init__(
        self,
        only: Iterable[str] | None = None,
        plugins: Iterable[type[Dissector]] | None = None,
    ) -> None:
        if plugins is not None:
            self.candidates = list(plugins)
        elif only:
            self.candidates = [get(n) for n in only]
        else:
            installed = available()
            self.candidates = [installed[n] for n in sorted(installed)]
        self.by_port: dict[tuple[str, int], list[type[Dissector]]] = {}
        for cls in self.candidates:
            for transport in cls.transports:
                # An ethertype plays the part of the service port on Ethernet.
                ports = cls.ethertypes if transport == "ethernet" else cls.default_ports
                for port in ports:
                    self.by_port.setdefault((transport, port), []).append(cls)
        self.ethertypes = frozenset(
            port for transport, port in self.by_port if transport == "ethernet"
        )
        self.probe_min_bytes = max((c.probe_min_bytes for c in self.candidates), default=1)

    def service_port_hint(self, transport: str, port_a: int, port_b: int) -> int | None:
        """Which of two ports is a known service port, if exactly one is."""
        a = (transport, port_a) in self.by_port
        b = (transport, port_b) in self.by_port
        if a and not b:
            return port_a
        if b and not a:
            return port_b
        return None

    def choose(
        self, transport: str, server_port: int, data: bytes, to_server: bool
    ) -> type[Dissector] | None:
        """The first plugin whose probe accepts ``data``: port matches first.

        On Ethernet only the plugins that list the frame's ethertype are asked.
        """
        hinted = self.by_port.get((transport, server_port), ())
        for cls in hinted:
            if _safe_probe(cls, data, to_server):
                return cls
        if transport == "ethernet":
            return None
        for cls in self.candidates:
            if cls in hinted or cls.port_only or transport not in cls.transports:
                continue
            if _safe_probe(cls, data, to_server):
                return cls
        return None


def _safe_probe(cls: type[Dissector], data: bytes, to_server: bool) -> bool:
    # A probe that raises is a plugin bug; treat it as "not mine" so that one
    # faulty plugin cannot stop a capture from being read.
    try:
        return bool(cls.probe(data, to_server))
    except Exception:
        return False
