"""Ready-made targets: local servers that install here, started on loopback.

``pymodbus`` (the installed version, or ``pymodbus==X.Y.Z`` from a venv this
module builds once and caches under ``~/.cache/otdpi/targets/``), ``libmodbus``
(Debian's ``libmodbus5`` driven through ctypes), ``hl7-mllp`` (the ``hl7``
package's asyncio MLLP server). Each recipe returns a :class:`Target` that
the campaign starts, watches and restarts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

from otdpi.errors import UsageError
from otdpi.fuzzing.session_recipes import FACTORIES as SESSION_FACTORIES
from otdpi.fuzzing.session_recipes import RECIPES as SESSION_RECIPES
from otdpi.fuzzing.targets import Target

SERVERS = Path(__file__).resolve().parent / "servers"
CACHE = (
    Path(os.environ.get("OTDPI_CACHE", Path.home() / ".cache" / "otdpi")) / "targets"
)

RECIPES = {
    "pymodbus": "pymodbus TCP server (pymodbus or pymodbus==VERSION)",
    "libmodbus": "libmodbus TCP server from Debian's libmodbus5, through ctypes",
    "hl7-mllp": "HL7 MLLP receiver of the hl7 package (asyncio), ACKs each message",
}
# The stateful protocols' servers (secsgem, pynetdicom...) live in their own module.
RECIPES.update(SESSION_RECIPES)


def package_venv(package: str, version: str) -> Path:
    """The python of a cached venv holding ``package==version``; built on first use.

    Raises
    ------
    UsageError
        the venv could not be made or the package not installed.
    """
    home = CACHE / f"{package}-{version}"
    python = home / "bin" / "python"
    marker = home / ".otdpi-ready"
    if marker.exists():
        return python
    try:
        home.parent.mkdir(parents=True, exist_ok=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"{package}=={version}"],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise UsageError(
            f"cannot build a venv with {package}=={version} in {home}: {exc} "
            f"{detail.decode(errors='replace')[-300:]}"
        ) from exc
    marker.touch()
    return python


def _installed_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def pymodbus(port: int, version: str | None = None) -> Target:
    """A pymodbus server; ``version`` None means the one installed here."""
    if version is None or version == _installed_version("pymodbus"):
        python = Path(sys.executable)
        version = version or _installed_version("pymodbus") or "?"
    else:
        python = package_venv("pymodbus", version)
    return Target(
        f"127.0.0.1:{port}",
        [str(python), str(SERVERS / "pymodbus_server.py"), str(port)],
        name=f"pymodbus=={version}",
        # An asyncio server: hundreds of open connections cost it little, and
        # cases still waiting for a reply that does not come keep theirs open.
        max_concurrency=512,
    )


def libmodbus(port: int) -> Target:
    """libmodbus's own TCP server loop, one connection at a time.

    Raises
    ------
    UsageError
        ``libmodbus.so.5`` is not installed (Debian package ``libmodbus5``).
    """
    from otdpi.fuzzing.servers.libmodbus_server import find_library

    if find_library() is None:
        raise UsageError("libmodbus is not installed (apt-get install libmodbus5)")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "libmodbus_server.py"), str(port)],
        name="libmodbus",
        max_concurrency=1,
        # libmodbus sleeps its 0.5 s response timeout before some replies;
        # wait long enough to see them arrive late rather than not at all.
        reply_timeout=2.0,
    )


def hl7_mllp(port: int) -> Target:
    """The hl7 package's MLLP receiver, answering each message with an ACK."""
    if _installed_version("hl7") is None:
        raise UsageError("the hl7 package is not installed (pip install hl7)")
    return Target(
        f"127.0.0.1:{port}",
        [sys.executable, str(SERVERS / "mllp_server.py"), str(port)],
        name=f"hl7=={_installed_version('hl7')}",
    )


def recipe(spec: str, port: int) -> Target:
    """A target from a recipe name such as ``pymodbus==3.10.0`` or ``libmodbus``.

    Raises
    ------
    UsageError
        an unknown recipe, or one that cannot be built here.
    """
    name, _, version = spec.partition("==")
    if name == "pymodbus":
        return pymodbus(port, version or None)
    if name == "libmodbus":
        return libmodbus(port)
    if name in ("hl7-mllp", "hl7"):
        return hl7_mllp(port)
    if name in SESSION_FACTORIES:
        return SESSION_FACTORIES[name](port)
    raise UsageError(f"unknown recipe {spec!r}; known: {', '.join(RECIPES)}")
