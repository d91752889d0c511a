"""A pymodbus TCP server on loopback, the target a pymodbus recipe starts.

Run by whatever interpreter holds the pymodbus version under test (a cached
venv for versions other than the project's own), so it imports nothing from
otdpi. Usage: ``python pymodbus_server.py PORT``.
"""

import asyncio
import logging
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncTcpServer


def _context() -> ModbusServerContext:
    """Every table, every address (pymodbus counts blocks from 1)."""

    def block():
        return ModbusSequentialDataBlock(1, [0] * 65535)

    device = ModbusDeviceContext(di=block(), co=block(), hr=block(), ir=block())
    try:
        return ModbusServerContext(devices=device, single=True)
    except TypeError:  # older keyword name
        return ModbusServerContext(slaves=device, single=True)


async def _main(port: int) -> None:
    await StartAsyncTcpServer(context=_context(), address=("127.0.0.1", port))


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    asyncio.run(_main(int(sys.argv[1])))
