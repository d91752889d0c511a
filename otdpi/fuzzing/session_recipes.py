"""Ready-made targets of the stateful protocols: secsgem, pynetdicom, python-snap7, libiec61850.

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
    "libiec61850": "libiec61850 MMS server through pyiec61850-ng, GPL-3.0, only if "
    "already installed (profile mms)",
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


def libiec61850(port: int) -> Target:
    """libiec61850's MMS server through pyiec61850-ng, when it is installed here.

    pyiec61850-ng is GPL-3.0: it runs as a separate process and is never a
    dependency of otdpi or of its tests.
    """
    release = _installed("pyiec61850-ng")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "iec61850_server.py"), str(port)],
        name=f"pyiec61850-ng=={release}",
        max_concurrency=4,
    )


FACTORIES = {
    "secsgem": secsgem,
    "pynetdicom": pynetdicom,
    "snap7": snap7,
    "python-snap7": snap7,
    "libiec61850": libiec61850,
}
