"""A pynetdicom storage and verification SCP on loopback, accepting every store.

The target the ``pynetdicom`` recipe starts. It imports nothing from otdpi.
It accepts the Verification SOP class and every storage SOP class pynetdicom
knows, and answers each C-STORE with success. pynetdicom logs through
:mod:`logging`; only records that carry a traceback are written (stderr), so
that the harness's log oracle sees faults the library caught and logged, not
its protocol chatter. Usage: ``python dicom_scp.py PORT``.
"""

import logging
import sys

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification


class _TracebacksOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None


def _store(event) -> int:
    return 0x0000


def main(port: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TracebacksOnly())
    logging.basicConfig(level=logging.DEBUG, handlers=[handler])
    for name in ("pynetdicom", "pydicom"):
        logging.getLogger(name).handlers = [handler]
        logging.getLogger(name).propagate = False
    ae = AE(ae_title="OTDPI_SCP")
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    ae.maximum_associations = 64
    ae.network_timeout = 5
    ae.acse_timeout = 5
    ae.dimse_timeout = 5
    print(f"pynetdicom storage SCP OTDPI_SCP on 127.0.0.1:{port}", flush=True)
    ae.start_server(("127.0.0.1", port), evt_handlers=[(evt.EVT_C_STORE, _store)])


if __name__ == "__main__":
    main(int(sys.argv[1]))
