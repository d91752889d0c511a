"""An HL7 MLLP receiver built on the ``hl7`` package's asyncio server.

It answers every message with the ACK the library builds (``create_ack``), the
usual way the package is meant to be used; a block the library cannot read
ends the connection, with the error on stderr. Usage: ``python mllp_server.py PORT``.
"""

import asyncio
import sys
import traceback

import hl7
from hl7.mllp import start_hl7_server


async def answer(reader, writer) -> None:
    """ACK each message of one connection until the peer leaves."""
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    except Exception:  # noqa: BLE001 - a bad message must not end the server
        traceback.print_exc(file=sys.stderr)
    finally:
        if not writer.is_closing():
            writer.close()


async def main(port: int) -> None:
    server = await start_hl7_server(answer, host="127.0.0.1", port=port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    print(f"hl7 {hl7.__version__} MLLP receiver on 127.0.0.1:{sys.argv[1]}", flush=True)
    asyncio.run(main(int(sys.argv[1])))
