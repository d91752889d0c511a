"""A secsgem GEM equipment (``GemEquipmentHandler``, HSMS passive) on loopback.

The target the ``secsgem`` recipe starts. It imports nothing from otdpi.
secsgem logs through :mod:`logging`; only records that carry a traceback are
written (to stderr), so that the harness's log oracle sees the faults the
library caught and logged, not its ordinary chatter.

secsgem 0.3.0's equipment serves one host connection per process: after the
first host leaves, its listening socket is never reopened (``shutdown()`` on
the listening socket raises ENOTCONN on Linux, the socket stays open and the
next ``bind()`` fails with EADDRINUSE), and even with a listener its state
machines are not reset (the next Select.req is answered but its handler
raises ``WrongSourceStateError``, and data messages get Reject.req "entity
not selected"). Both are findings of this harness (docs/fuzzing.md). To fuzz
the protocol past the first connection, this script holds one listening
socket and forks a fresh equipment for each host: the child's secsgem
accepts from the inherited socket, serves that host, and exits when it
leaves; the parent then forks the next. HSMS-SS serves one host at a time,
so nothing is lost. ``--unpatched`` runs one secsgem equipment as it is, to
see the faults. Usage: ``python secsgem_equipment.py PORT [SESSION_ID]
[--unpatched]``.
"""

import logging
import os
import select
import socket
import sys
import threading
import time

import secsgem.common
import secsgem.gem
import secsgem.hsms
from secsgem.common import tcp_server_connection

# A child that serves a host longer than this is stuck: it is killed.
MAX_SESSION_SECONDS = 10.0
TCP_ESTABLISHED = 1


class _TracebacksOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


class _Listener:
    """The inherited listening socket, as secsgem's server thread uses one."""

    real: socket.socket | None = None

    def __init__(self, *args, **kwargs) -> None:
        pass

    def setsockopt(self, *args) -> None:
        pass

    def bind(self, address) -> None:
        pass

    def listen(self, backlog: int) -> None:
        pass

    def fileno(self) -> int:
        return _Listener.real.fileno()

    def accept(self):
        conn, address = _Listener.real.accept()
        threading.Thread(target=_exit_when_gone, args=(conn,), daemon=True).start()
        return conn, address

    def shutdown(self, how) -> None:
        pass

    def close(self) -> None:
        pass


class _SocketModule:
    """The ``socket`` module as secsgem's server connection sees it."""

    socket = _Listener

    def __getattr__(self, name):
        return getattr(socket, name)


def _exit_when_gone(conn: socket.socket) -> None:
    """End the child once its host has left, even if secsgem did not notice.

    secsgem's receiver thread stops for good after some exceptions (a message
    length of 0 is one), and then never reports the disconnect.
    """
    while True:
        time.sleep(0.005)
        try:
            state = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        except OSError:
            os._exit(0)
        if state != TCP_ESTABLISHED:
            os._exit(0)


def _equipment(port: int, session_id: int) -> secsgem.gem.GemEquipmentHandler:
    settings = secsgem.hsms.HsmsSettings(
        address="127.0.0.1",
        port=port,
        connect_mode=secsgem.hsms.HsmsConnectMode.PASSIVE,
        device_type=secsgem.common.DeviceType.EQUIPMENT,
        session_id=session_id,
    )
    return secsgem.gem.GemEquipmentHandler(settings)


def _serve_one(port: int, session_id: int) -> None:
    """In a forked child: one equipment, one host, then exit."""
    tcp_server_connection.socket = _SocketModule()
    tcp_server_connection.TcpServerConnection._disconnected = (
        lambda self, _: os._exit(0)
    )
    _equipment(port, session_id).enable()
    threading.Event().wait(MAX_SESSION_SECONDS)
    os._exit(0)


def main(port: int, session_id: int, patched: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TracebacksOnly())
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    if not patched:
        _equipment(port, session_id).enable()
        print(f"secsgem equipment (unpatched) on 127.0.0.1:{port}", flush=True)
        threading.Event().wait()
    listener = socket.create_server(("127.0.0.1", port), backlog=16)
    _Listener.real = listener
    print(f"secsgem equipment on 127.0.0.1:{port} session {session_id}", flush=True)
    while True:
        # Fork only when a host is waiting, so a child's start-up cost is
        # never paid for nothing and the probe of the harness finds a listener.
        socket_ready = select.select([listener], [], [], 1.0)[0]
        if not socket_ready:
            continue
        child = os.fork()
        if child == 0:
            _serve_one(port, session_id)
        started = time.monotonic()
        while True:
            done, _ = os.waitpid(child, os.WNOHANG)
            if done:
                break
            if time.monotonic() - started > MAX_SESSION_SECONDS + 5:
                os.kill(child, 9)
            time.sleep(0.002)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(
        int(args[0]),
        int(args[1]) if len(args) > 1 else 0,
        "--unpatched" not in sys.argv,
    )
