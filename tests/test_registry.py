"""The registry: every installed plugin loads, and loading them all stays light."""

from __future__ import annotations

import subprocess
import sys

from otdpi.dissector import Dissector
from otdpi.registry import Selector, available

# Libraries a plugin may need for some flows, never for being loaded: every run
# loads every plugin to probe flows, so start-up pays whatever they import.
HEAVY = ("pydicom", "cryptography", "matplotlib", "distributed", "jinja2", "pyasn1_modules")


def test_every_plugin_is_a_named_dissector_with_a_transport():
    plugins = available()
    assert "modbus" in plugins
    for name, cls in plugins.items():
        assert issubclass(cls, Dissector) and cls.name == name
        assert set(cls.transports) <= {"tcp", "udp", "ethernet"}
        assert cls.probe_min_bytes >= 1


def test_loading_every_plugin_imports_no_heavy_library():
    code = ("import sys; from otdpi.registry import Selector; Selector(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "", f"imported at load time: {done.stdout.strip()}"


def test_a_probe_never_sees_its_own_exception():
    class Broken(Dissector):
        name = "broken"

        @classmethod
        def probe(cls, data, to_server):
            raise RuntimeError("plugin bug")

    assert Selector(plugins=[Broken]).choose("tcp", 1, b"\x00" * 8, True) is None
