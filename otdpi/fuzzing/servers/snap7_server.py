"""python-snap7's pure-Python S7 server on loopback, with a few data areas.

The target the ``snap7`` recipe starts. It imports nothing from otdpi.
Usage: ``python snap7_server.py PORT``.
"""

import sys
import threading

from snap7.server import Server
from snap7.type import SrvArea


def main(port: int) -> None:
    server = Server(log=False)
    areas = {
        (SrvArea.DB, 1): bytearray(range(64)),
        (SrvArea.DB, 2): bytearray(64),
        (SrvArea.MK, 0): bytearray(32),
        (SrvArea.PE, 0): bytearray(16),
        (SrvArea.PA, 0): bytearray(16),
    }
    for (area, index), data in areas.items():
        server.register_area(area, index, data)
    server.start_to("127.0.0.1", port)
    print(f"python-snap7 server on 127.0.0.1:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]))
