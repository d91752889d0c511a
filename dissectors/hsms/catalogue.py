"""Names and normalised actions of the standard SECS-II streams and functions (SEMI E5).

Only the messages GEM hosts and tools commonly exchange are named one by one;
any other function of a known stream gets the stream's name and its number,
and its action from the stream. Replies (even functions) share the action of
their primary (the odd function before them).
"""

from __future__ import annotations

STREAM_NAMES = {
    1: "equipment status",
    2: "equipment control and diagnostics",
    3: "materials status",
    4: "material control",
    5: "exception handling",
    6: "data collection",
    7: "process program management",
    8: "control program transfer",
    9: "system errors",
    10: "terminal services",
    11: "host file services",
    12: "wafer mapping",
    13: "data set transfer",
    14: "object services",
    15: "recipe management",
    16: "processing management",
    17: "equipment control and diagnostics (reports and traces)",
    18: "subsystem control and data",
    19: "recipe and parameter management",
    20: "recipe management system",
    21: "item transfer",
}

FUNCTION_NAMES = {
    (1, 1): "are you there request",
    (1, 2): "on line data",
    (1, 3): "selected equipment status request",
    (1, 4): "selected equipment status data",
    (1, 5): "formatted status request",
    (1, 6): "formatted status data",
    (1, 11): "status variable namelist request",
    (1, 12): "status variable namelist reply",
    (1, 13): "establish communications request",
    (1, 14): "establish communications request acknowledge",
    (1, 15): "request off-line",
    (1, 16): "off-line acknowledge",
    (1, 17): "request on-line",
    (1, 18): "on-line acknowledge",
    (1, 21): "data variable namelist request",
    (1, 22): "data variable namelist",
    (1, 23): "collection event namelist request",
    (1, 24): "collection event namelist",
    (2, 13): "equipment constant request",
    (2, 14): "equipment constant data",
    (2, 15): "new equipment constant send",
    (2, 16): "new equipment constant acknowledge",
    (2, 17): "date and time request",
    (2, 18): "date and time data",
    (2, 21): "remote command send",
    (2, 22): "remote command acknowledge",
    (2, 23): "trace initialize send",
    (2, 24): "trace initialize acknowledge",
    (2, 29): "equipment constant namelist request",
    (2, 30): "equipment constant namelist",
    (2, 31): "date and time set request",
    (2, 32): "date and time set acknowledge",
    (2, 33): "define report",
    (2, 34): "define report acknowledge",
    (2, 35): "link event report",
    (2, 36): "link event report acknowledge",
    (2, 37): "enable/disable event report",
    (2, 38): "enable/disable event report acknowledge",
    (2, 39): "multi-block inquire",
    (2, 40): "multi-block grant",
    (2, 41): "host command send",
    (2, 42): "host command acknowledge",
    (2, 43): "reset spooling streams and functions",
    (2, 44): "reset spooling acknowledge",
    (2, 45): "define variable limit attributes",
    (2, 46): "variable limit attribute acknowledge",
    (2, 49): "enhanced remote command",
    (2, 50): "enhanced remote command acknowledge",
    (5, 1): "alarm report send",
    (5, 2): "alarm report acknowledge",
    (5, 3): "enable/disable alarm send",
    (5, 4): "enable/disable alarm acknowledge",
    (5, 5): "list alarms request",
    (5, 6): "list alarm data",
    (5, 7): "list enabled alarm request",
    (5, 8): "list enabled alarm data",
    (6, 1): "trace data send",
    (6, 2): "trace data acknowledge",
    (6, 3): "discrete variable data send",
    (6, 4): "discrete variable data acknowledge",
    (6, 5): "multi-block data send inquire",
    (6, 6): "multi-block grant",
    (6, 11): "event report send",
    (6, 12): "event report acknowledge",
    (6, 15): "event report request",
    (6, 16): "event report data",
    (6, 19): "individual report request",
    (6, 20): "individual report data",
    (7, 1): "process program load inquire",
    (7, 2): "process program load grant",
    (7, 3): "process program send",
    (7, 4): "process program acknowledge",
    (7, 5): "process program request",
    (7, 6): "process program data",
    (7, 17): "delete process program send",
    (7, 18): "delete process program acknowledge",
    (7, 19): "current equipment process program directory request",
    (7, 20): "current equipment process program data",
    (7, 23): "formatted process program send",
    (7, 24): "formatted process program acknowledge",
    (7, 25): "formatted process program request",
    (7, 26): "formatted process program data",
    (9, 1): "unrecognized device id",
    (9, 3): "unrecognized stream type",
    (9, 5): "unrecognized function type",
    (9, 7): "illegal data",
    (9, 9): "transaction timer timeout",
    (9, 11): "data too long",
    (9, 13): "conversation timeout",
    (10, 1): "terminal request",
    (10, 2): "terminal request acknowledge",
    (10, 3): "terminal display, single",
    (10, 4): "terminal display, single acknowledge",
    (10, 5): "terminal display, multi-block",
    (10, 6): "terminal display, multi-block acknowledge",
    (10, 7): "multi-block not allowed",
    (10, 9): "broadcast",
    (10, 10): "broadcast acknowledge",
    (14, 1): "get attribute request",
    (14, 2): "get attribute data",
    (14, 3): "set attribute request",
    (14, 4): "set attribute data",
    (14, 5): "get type request",
    (14, 6): "get type data",
    (14, 9): "create object request",
    (14, 10): "create object acknowledge",
    (14, 11): "delete object request",
    (14, 12): "delete object acknowledge",
}

# Action of a primary message (odd function) by (stream, function); replies
# take the action of the primary they answer.
_ACTIONS = {
    (1, 1): "identify",
    (1, 13): "identify",
    (1, 3): "read", (1, 5): "read", (1, 11): "read", (1, 19): "read",
    (1, 21): "read", (1, 23): "read",
    (1, 15): "control", (1, 17): "control",
    (2, 13): "read", (2, 17): "read", (2, 29): "read",
    (2, 15): "write", (2, 31): "write", (2, 33): "write", (2, 35): "write",
    (2, 37): "write", (2, 45): "write", (2, 23): "diagnose", (2, 25): "diagnose",
    (2, 21): "control", (2, 41): "control", (2, 49): "control", (2, 19): "control",
    (5, 1): "data", (5, 3): "write", (5, 5): "read", (5, 7): "read",
    (5, 9): "data", (5, 11): "data",
    (6, 1): "data", (6, 3): "data", (6, 9): "data", (6, 11): "data", (6, 13): "data",
    (6, 15): "read", (6, 17): "read", (6, 19): "read", (6, 21): "read",
    (7, 1): "program", (7, 3): "program", (7, 5): "program", (7, 17): "program",
    (7, 19): "read", (7, 23): "program", (7, 25): "program",
    (14, 1): "read", (14, 3): "write", (14, 5): "read", (14, 9): "write",
    (14, 11): "write",
}  # fmt: skip

_STREAM_ACTIONS = {
    7: "program",
    8: "program",
    9: "other",
    10: "other",
    15: "program",
    19: "program",
}

# Primary messages that report something the equipment saw (kind "event"):
# alarms (S5F1) and event reports (S6F11, S6F13), trace and discrete data.
EVENT_MESSAGES = frozenset({(5, 1), (6, 1), (6, 3), (6, 9), (6, 11), (6, 13)})


def function_name(stream: int, function: int) -> str:
    """The E5 name of ``SxFy``, or a generic one for functions not listed."""
    name = FUNCTION_NAMES.get((stream, function))
    if name is not None:
        return name
    if function == 0:
        return "abort transaction"
    stream_name = STREAM_NAMES.get(stream)
    if stream_name is None:
        return f"stream {stream} function {function}"
    return f"{stream_name}, function {function}"


def action(stream: int, function: int) -> str:
    """The normalised action of ``SxFy`` (a reply shares its primary's)."""
    if function == 0:
        return "session"
    primary = function if function & 1 else function - 1
    found = _ACTIONS.get((stream, primary))
    if found is not None:
        return found
    return _STREAM_ACTIONS.get(stream, "other")
