"""A libmodbus TCP server driven through ctypes, the target the libmodbus recipe starts.

It is libmodbus's own documented server loop: ``modbus_tcp_listen``, then for
each connection ``modbus_tcp_accept``, ``modbus_receive`` and ``modbus_reply``
until the peer leaves, over a ``modbus_mapping_new`` table of every address.
Usage: ``python libmodbus_server.py PORT``.
"""

import ctypes
import ctypes.util
import os
import sys

MODBUS_TCP_MAX_ADU_LENGTH = 260


def find_library():
    """The path or soname of libmodbus, None when it is not installed."""
    for name in ("libmodbus.so.5", ctypes.util.find_library("modbus")):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    return None


def serve(port: int) -> None:
    """Serve forever on 127.0.0.1:PORT."""
    lib = ctypes.CDLL(find_library(), use_errno=True)
    lib.modbus_new_tcp.restype = ctypes.c_void_p
    lib.modbus_new_tcp.argtypes = [ctypes.c_char_p, ctypes.c_int]
    lib.modbus_mapping_new.restype = ctypes.c_void_p
    lib.modbus_mapping_new.argtypes = [ctypes.c_int] * 4
    lib.modbus_tcp_listen.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.modbus_tcp_accept.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
    lib.modbus_receive.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.modbus_reply.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    lib.modbus_close.argtypes = [ctypes.c_void_p]
    lib.modbus_strerror.restype = ctypes.c_char_p

    ctx = lib.modbus_new_tcp(b"127.0.0.1", port)
    mapping = lib.modbus_mapping_new(65535, 65535, 65535, 65535)
    listener = ctypes.c_int(lib.modbus_tcp_listen(ctx, 16))
    if listener.value < 0:
        sys.exit(f"modbus_tcp_listen failed: {lib.modbus_strerror(ctypes.get_errno())}")
    query = ctypes.create_string_buffer(MODBUS_TCP_MAX_ADU_LENGTH)
    while True:
        client = lib.modbus_tcp_accept(ctx, ctypes.byref(listener))
        if client < 0:
            continue
        while True:
            size = lib.modbus_receive(ctx, query)
            if size > 0:
                lib.modbus_reply(ctx, query, size, mapping)
            elif size < 0:
                break  # peer closed or the frame was refused: next connection
        os.close(client)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
