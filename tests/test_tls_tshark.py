"""TLS agreement with tshark: SNI, JA3 and cipher suites of every ClientHello, and the
ServerHello's chosen suite, on the public mixed IT/OT captures."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import otdpi
from tests import tshark_oracle

CAPTURES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "captures" / "mixed-it"
)
FILES = sorted(CAPTURES.glob("*.pcap*")) if CAPTURES.is_dir() else []
# Non-standard TLS ports in these captures, told to tshark as otdpi finds them by probe.
DECODE_AS = ["-d", "tcp.port==8888,tls", "-d", "tcp.port==502,tls"]

pytestmark = [
    pytest.mark.skipif(not FILES, reason="shared captures not present"),
    pytest.mark.skipif(not tshark_oracle.available(), reason="tshark not installed"),
]


def _tshark(path: Path) -> dict[tuple[int, str], tuple]:
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            *DECODE_AS,
            "-Y",
            "tls.handshake.type == 1 || tls.handshake.type == 2",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "aggregator=,",
            "-e",
            "frame.number",
            "-e",
            "tls.handshake.type",
            "-e",
            "tls.handshake.extensions_server_name",
            "-e",
            "tls.handshake.ja3",
            "-e",
            "tls.handshake.ciphersuite",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        frame, types, sni, ja3, suites = (line.split("\t") + [""] * 5)[:5]
        for kind in types.split(","):
            name = {"1": "client_hello", "2": "server_hello"}.get(kind)
            if name == "client_hello":
                found[int(frame), name] = (
                    sni or None,
                    ja3,
                    [int(s, 16) for s in suites.split(",") if s],
                )
            elif name == "server_hello":
                found[int(frame), name] = (int(suites.split(",")[-1], 16),)
    return found


def _otdpi(path: Path) -> dict[tuple[int, str], tuple]:
    found = {}
    for m in otdpi.read(path, protocols=["tls"]):
        if m.service == "client_hello" and m.status.state == "ok":
            f = m.fields
            found[m.frame, m.service] = (f["sni"], f["ja3"], f["cipher_suites"])
        elif m.service == "server_hello" and m.status.state == "ok":
            found[m.frame, m.service] = (m.fields["cipher_suite"],)
    return found


def test_hellos_agree_with_tshark():
    compared = agreed = 0
    differing = []
    for path in FILES:
        theirs, ours = _tshark(path), _otdpi(path)
        for key, value in theirs.items():
            compared += 1
            if ours.get(key) == value:
                agreed += 1
            else:
                differing.append((path.name, key, value, ours.get(key)))
    assert compared >= 10
    share = 100.0 * agreed / compared
    print(f"TLS hellos: {agreed}/{compared} agree with tshark ({share:.2f} %)")
    assert share >= 99.9, differing[:10]
