"""An opendnp3 outstation (link address 1, master 2) on loopback, via dnp3-python.

The target the ``opendnp3`` recipe starts, with the Python 3.10 interpreter of
the venv the recipe builds (``dnp3-python`` 0.3.0b2 ships Python 3.10 wheels
only). It imports nothing from otdpi. Unsolicited responses are off, so that
every response the harness reads answers one of its requests. Usage:
``python opendnp3_outstation.py PORT``.
"""

import sys
import threading

from dnp3_python.dnp3station.outstation import MyOutStation


def main(port: int) -> None:
    outstation = MyOutStation(
        outstation_ip="127.0.0.1", port=port, master_id=2, outstation_id=1,
        channel_log_level=0, outstation_log_level=0, is_allowUnsolicited=False,
    )  # fmt: skip
    outstation.start()
    print(f"opendnp3 outstation 1 on 127.0.0.1:{port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]))
