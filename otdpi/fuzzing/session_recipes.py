"""Ready-made targets of the stateful protocols: secsgem, pynetdicom and python-snap7.

Each recipe starts its server script (under ``servers/``) with this
interpreter on loopback at the given port; :class:`~otdpi.fuzzing.targets.Target`
waits until the port accepts and restarts the server after it dies. A recipe
whose library is not installed raises :class:`~otdpi.errors.UsageError` with
the ``pip install`` line that would provide it.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from otdpi.errors import UsageError
from otdpi.fuzzing.targets import Target

SERVERS = Path(__file__).resolve().parent / "servers"

RECIPES = {
    "secsgem": "secsgem GemEquipmentHandler, HSMS passive, session id 0 (profile hsms)",
    "pynetdicom": "pynetdicom storage and verification SCP OTDPI_SCP (profile dicom)",
    "snap7": "python-snap7's pure-Python S7 server with DB1, DB2, M, I, Q "
    "(profile s7comm)",
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


# Limitation: no MMS recipe. libiec61850's server through pyiec61850-ng (GPL-3.0,
# in the record extra, not installed here) would be the peer; meanwhile the mms
# profile runs against a server given with --start. A server script started like
# the others, used only where pyiec61850-ng is already installed, would lift it.


FACTORIES = {
    "secsgem": secsgem,
    "pynetdicom": pynetdicom,
    "snap7": snap7,
    "python-snap7": snap7,
}
