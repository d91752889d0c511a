"""The compiled learner is built where it can be, and decides exactly as the interpreted one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otdpi.learner import compiled

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DIGEST = HERE / "learner_digest.py"
CAPTURES = REPO.parent / "shared" / "captures"

# Every fixture, and public captures of each protocol and of the attacks.
INPUTS = sorted(str(p) for p in (REPO / "fixtures").glob("*.pcap*")) + [
    str(CAPTURES / name)
    for name in (
        "attacks/lemay_covert_channel_4d_12s.pcap",
        "attacks/lemay_characterization_modbus_6rtu.pcap",
        "attacks/qut_dnp3_mitm_testing_frequent.pcap",
        "attacks/qut_s7_watertankonmanu_flooding_master.pcap",
        "modbus/iti_modbus_test.pcap",
        "dnp3/emre_dnp3_dataset_paper.pcap",
        "s7comm/iti_s7comm_libnodave_bench.pcap",
        "mixed-it/ndpi_selfsigned_tls.pcap",
        "attacks/lemay_cnc_uploading_exe_modbus_6rtu.pcap",
        "modbus/zeek_fuzz-1011.pcap",
    )
    if (CAPTURES / name).exists()
]
SEEDS = (1, 2, 3)


def _digest(pure: bool) -> dict:
    environment = dict(os.environ)
    environment.pop("OTDPI_PURE_PYTHON", None)
    if pure:
        environment["OTDPI_PURE_PYTHON"] = "1"
    command = [sys.executable, str(DIGEST), *INPUTS]
    for seed in SEEDS:
        command += ["--stream", str(seed)]
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(done.stdout)


@pytest.mark.skipif(
    os.environ.get("OTDPI_PURE_PYTHON") is not None or shutil.which("cc") is None,
    reason="the pure-Python learner was asked for, or there is no C compiler",
)
def test_the_learner_runs_compiled_where_a_compiler_is():
    assert compiled(), "otdpi/learner was not built: run `python -m pip install -e .`"


@pytest.mark.skipif(not compiled(), reason="the compiled learner is not built here")
def test_compiled_and_interpreted_learners_agree_byte_for_byte():
    fast, reference = _digest(pure=False), _digest(pure=True)
    assert fast.pop("compiled") is True
    assert reference.pop("compiled") is False
    assert fast.keys() == reference.keys()
    for name in reference:
        assert fast[name] == reference[name], name
    alerts = sum(len(document["alerts"]) for document in reference.values())
    assert alerts > 50  # the inputs do reach the models, not only the fast path
