"""Ready-made targets of the stateful protocols: secsgem, pynetdicom, snap7, opendnp3.

Each recipe starts its server script (under ``servers/``) with this
interpreter on loopback at the given port; :class:`~otdpi.fuzzing.targets.Target`
waits until the port accepts and restarts the server after it dies. A recipe
whose library is not installed raises :class:`~otdpi.errors.UsageError` with
the ``pip install`` line that would provide it. The ``opendnp3`` recipe runs
in a Python 3.10 venv it builds once under ``~/.cache/otdpi/targets/``
(``dnp3-python`` has wheels for 3.10 only).
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from otdpi.errors import UsageError
from otdpi.fuzzing.targets import Target

DNP3_PYTHON = "0.3.0b2"

SERVERS = Path(__file__).resolve().parent / "servers"

RECIPES = {
    "secsgem": "secsgem GemEquipmentHandler, HSMS passive, session id 0 (profile hsms)",
    "pynetdicom": "pynetdicom storage and verification SCP OTDPI_SCP (profile dicom)",
    "snap7": "python-snap7's pure-Python S7 server with DB1, DB2, M, I, Q "
    "(profile s7comm)",
    "opendnp3": f"opendnp3 outstation 1 through dnp3-python=={DNP3_PYTHON}, in a "
    "Python 3.10 venv built once (profile dnp3)",
}


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        raise UsageError(
            f"{package} is not installed (pip install {package})"
        ) from None


def secsgem(port: int) -> Target:
    """secsgem's GEM equipment, passive, on ``127.0.0.1:port``.

    One connection at a time: an HSMS-SS passive entity serves one host.
    """
    release = _installed("secsgem")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "secsgem_equipment.py"), str(port), "0"],
        name=f"secsgem=={release}",
        max_concurrency=1,
    )


def pynetdicom(port: int) -> Target:
    """pynetdicom's storage SCP (every storage SOP class and Verification)."""
    release = _installed("pynetdicom")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "dicom_scp.py"), str(port)],
        name=f"pynetdicom=={release}",
        # Each association is a thread pair in pynetdicom; on two cores more
        # than a few at once only queue.
        max_concurrency=8,
    )


def snap7(port: int) -> Target:
    """python-snap7's pure-Python S7 server."""
    release = _installed("python-snap7")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "snap7_server.py"), str(port)],
        name=f"python-snap7=={release}",
        max_concurrency=8,
    )


def _python310() -> str | None:
    """A Python 3.10 that runs: on PATH, else a pyenv install (pyenv's shim on
    PATH names 3.10 even where it is not the selected version, and then fails)."""
    found = shutil.which("python3.10")
    pattern = str(Path.home() / ".pyenv" / "versions" / "3.10*" / "bin" / "python")
    candidates = ([found] if found else []) + sorted(glob.glob(pattern), reverse=True)
    for candidate in candidates:
        try:
            ran = subprocess.run([candidate, "-c", "pass"], capture_output=True,
                                 timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if ran.returncode == 0:
            return candidate
    return None


def dnp3_venv() -> Path:
    """The python of a cached Python 3.10 venv holding dnp3-python; built once.

    Raises
    ------
    UsageError
        no Python 3.10 here, or the install failed.
    """
    from otdpi.fuzzing.recipes import CACHE

    home = CACHE / f"dnp3-python-{DNP3_PYTHON}"
    python = home / "bin" / "python"
    if (home / ".otdpi-ready").exists():
        return python
    base = _python310()
    if base is None:
        raise UsageError("the opendnp3 recipe needs a Python 3.10 (python3.10)")
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([base, "-m", "venv", "--clear", str(home)], check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"dnp3-python=={DNP3_PYTHON}"],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise UsageError(f"cannot build {home}: {exc}") from exc
    (home / ".otdpi-ready").touch()
    return python


def opendnp3(port: int) -> Target:
    """opendnp3's outstation (link address 1, master 2), unsolicited responses off."""
    return Target(
        f"127.0.0.1:{port}",
        [str(dnp3_venv()), str(SERVERS / "opendnp3_outstation.py"), str(port)],
        name=f"dnp3-python=={DNP3_PYTHON}",
        # An outstation serves one master; opendnp3 drops a second connection.
        max_concurrency=1,
    )


# Limitation: no MMS recipe. libiec61850's server through pyiec61850-ng (GPL-3.0,
# in the record extra, not installed here) would be the peer; meanwhile the mms
# profile runs against a server given with --start. A server script started like
# the others, used only where pyiec61850-ng is already installed, would lift it.


FACTORIES = {
    "secsgem": secsgem,
    "pynetdicom": pynetdicom,
    "snap7": snap7,
    "python-snap7": snap7,
    "opendnp3": opendnp3,
}
