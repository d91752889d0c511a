"""DNP3 object headers and object data (IEEE 1815-2012 clauses 4.2.2.7 and A).

An application fragment after its header is a list of object headers: group,
variation, qualifier (object prefix code in bits 6-4, range specifier code in
bits 3-0) and a range field, each followed (when the function carries data)
by the objects, each with its prefix (index or size) when the qualifier has
one. Fixed-size point objects are decoded from :data:`POINT_LAYOUTS`, one
table from which both the construct definitions and the hot-path
:mod:`struct` decoders are made, so the two cannot drift apart. Packed bit
objects, octet strings, device attributes (group 0) and file objects
(group 70) have decoders of their own; other objects carried with a size
prefix are kept as raw bytes, and an object of unknown size without one ends
the decoding of the fragment, its remaining octets kept raw.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

import construct as cs


class Qualifier(enum.IntEnum):
    """Range specifier codes (bits 3-0 of the qualifier), table 4-4."""

    START_STOP_1 = 0
    START_STOP_2 = 1
    START_STOP_4 = 2
    VIRTUAL_START_STOP_1 = 3
    VIRTUAL_START_STOP_2 = 4
    VIRTUAL_START_STOP_4 = 5
    ALL_OBJECTS = 6
    COUNT_1 = 7
    COUNT_2 = 8
    COUNT_4 = 9
    VARIABLE_COUNT_1 = 11  # 0xB: count, objects of variable format


class Prefix(enum.IntEnum):
    """Object prefix codes (bits 6-4 of the qualifier), table 4-3."""

    NONE = 0
    INDEX_1 = 1
    INDEX_2 = 2
    INDEX_4 = 3
    SIZE_1 = 4
    SIZE_2 = 5
    SIZE_4 = 6


PREFIX_SIZES = (0, 1, 2, 4, 1, 2, 4)
_START_STOP_SIZES = {0: 1, 1: 2, 2: 4, 3: 1, 4: 2, 5: 4}
_COUNT_SIZES = {7: 1, 8: 2, 9: 4, 11: 1}

# More objects than this under one header cannot be real (a fragment of at
# most 64 KiB holds fewer); a header claiming more is malformed.
MAX_OBJECTS = 65536
MAX_HEADERS = 1024

# --- fixed-size point objects -----------------------------------------------

_FLAGS = ("flags", "u8")
_TIME = ("time", "t48")  # milliseconds since 1970-01-01 UTC
_RELTIME = ("relative_time", "u16")
_STATUS = ("status", "u8")
_U16, _U32 = ("value", "u16"), ("value", "u32")
_I16, _I32 = ("value", "i16"), ("value", "i32")
_F32, _F64 = ("value", "f32"), ("value", "f64")
_CROB = (("control_code", "u8"), ("count", "u8"), ("on_time", "u32"),
         ("off_time", "u32"), _STATUS)
_COUNTER_EVENT = {1: (_FLAGS, _U32), 2: (_FLAGS, _U16), 3: (_FLAGS, _U32),
                  4: (_FLAGS, _U16), 5: (_FLAGS, _U32, _TIME),
                  6: (_FLAGS, _U16, _TIME), 7: (_FLAGS, _U32, _TIME),
                  8: (_FLAGS, _U16, _TIME)}
_ANALOG_EVENT = {1: (_FLAGS, _I32), 2: (_FLAGS, _I16), 3: (_FLAGS, _I32, _TIME),
                 4: (_FLAGS, _I16, _TIME), 5: (_FLAGS, _F32), 6: (_FLAGS, _F64),
                 7: (_FLAGS, _F32, _TIME), 8: (_FLAGS, _F64, _TIME)}

# (group, variation) -> the object's fields in wire order, each (name, type).
POINT_LAYOUTS: dict[tuple[int, int], tuple[tuple[str, str], ...]] = {}


def _layouts(group: int, variations: dict[int, tuple]) -> None:
    for variation, layout in variations.items():
        POINT_LAYOUTS[group, variation] = tuple(layout)


_layouts(1, {2: (_FLAGS,)})  # binary input with flags
_layouts(2, {1: (_FLAGS,), 2: (_FLAGS, _TIME), 3: (_FLAGS, _RELTIME)})
_layouts(3, {2: (_FLAGS,)})  # double-bit binary input with flags
_layouts(4, {1: (_FLAGS,), 2: (_FLAGS, _TIME), 3: (_FLAGS, _RELTIME)})
_layouts(10, {2: (_FLAGS,)})  # binary output status
_layouts(11, {1: (_FLAGS,), 2: (_FLAGS, _TIME)})
_layouts(12, {1: _CROB, 2: _CROB})  # CROB and pattern control block
_layouts(13, {1: (_FLAGS,), 2: (_FLAGS, _TIME)})
_layouts(20, {1: (_FLAGS, _U32), 2: (_FLAGS, _U16), 3: (_FLAGS, _U32),
              4: (_FLAGS, _U16), 5: (_U32,), 6: (_U16,), 7: (_U32,), 8: (_U16,)})
_layouts(21, {**_COUNTER_EVENT, 9: (_U32,), 10: (_U16,), 11: (_U32,), 12: (_U16,)})
_layouts(22, _COUNTER_EVENT)
_layouts(23, _COUNTER_EVENT)
_layouts(30, {1: (_FLAGS, _I32), 2: (_FLAGS, _I16), 3: (_I32,), 4: (_I16,),
              5: (_FLAGS, _F32), 6: (_FLAGS, _F64)})
_layouts(31, {1: (_FLAGS, _I32), 2: (_FLAGS, _I16), 3: (_FLAGS, _I32, _TIME),
              4: (_FLAGS, _I16, _TIME), 5: (_I32,), 6: (_I16,), 7: (_FLAGS, _F32),
              8: (_FLAGS, _F64)})
_layouts(32, _ANALOG_EVENT)
_layouts(33, _ANALOG_EVENT)
_layouts(34, {1: (_U16,), 2: (_U32,), 3: (_F32,)})  # analog input deadband
_layouts(40, {1: (_FLAGS, _I32), 2: (_FLAGS, _I16), 3: (_FLAGS, _F32),
              4: (_FLAGS, _F64)})
_layouts(41, {1: (_I32, _STATUS), 2: (_I16, _STATUS), 3: (_F32, _STATUS),
              4: (_F64, _STATUS)})  # analog output block
_layouts(42, _ANALOG_EVENT)
_layouts(43, {v: (_STATUS,) + layout[1:] for v, layout in _ANALOG_EVENT.items()})
_layouts(50, {1: (_TIME,), 2: (_TIME, ("interval", "u32")), 3: (_TIME,),
              4: (_TIME, ("interval_count", "u32"), ("interval_units", "u8"))})
_layouts(51, {1: (_TIME,), 2: (_TIME,)})  # common time of occurrence
_layouts(52, {1: (("delay_seconds", "u16"),), 2: (("delay_milliseconds", "u16"),)})
_layouts(102, {1: (("value", "u8"),)})
_layouts(121, {1: (_FLAGS, ("association_id", "u16"), _U32)})
_layouts(122, {1: (_FLAGS, ("association_id", "u16"), _U32),
               2: (_FLAGS, ("association_id", "u16"), _U32, _TIME)})

_STRUCT_CODES = {"u8": "B", "u16": "H", "i16": "h", "u32": "I", "i32": "i",
                 "f32": "f", "f64": "d", "t48": "6s"}
_CONSTRUCT_TYPES = {"u8": cs.Int8ul, "u16": cs.Int16ul, "i16": cs.Int16sl,
                    "u32": cs.Int32ul, "i32": cs.Int32sl, "f32": cs.Float32l,
                    "f64": cs.Float64l, "t48": cs.BytesInteger(6, swapped=True)}


def point_struct(group: int, variation: int) -> cs.Struct:
    """The construct definition of one fixed-size object, from the layout table."""
    layout = POINT_LAYOUTS[group, variation]
    return cs.Struct(*(name / _CONSTRUCT_TYPES[kind] for name, kind in layout))


class _Fast:
    """A compiled :mod:`struct` reader for one layout, same result as construct."""

    __slots__ = ("size", "unpack", "names", "time_at")

    def __init__(self, layout: tuple[tuple[str, str], ...]) -> None:
        packer = struct.Struct("<" + "".join(_STRUCT_CODES[k] for _, k in layout))
        self.size = packer.size
        self.unpack = packer.unpack_from
        self.names = tuple(name for name, _ in layout)
        kinds = [k for _, k in layout]
        self.time_at = kinds.index("t48") if "t48" in kinds else -1


FAST_LAYOUTS = {key: _Fast(layout) for key, layout in POINT_LAYOUTS.items()}

_INDEX_CODES = ("", "B", "H", "I")


def _run_reader(key: tuple[int, int], prefix_code: int):
    """(struct, builder) reading a run of one layout with index prefix code 0-3.

    Only for layouts without a 48-bit time, whose values need no conversion:
    ``iter_unpack`` reads the whole run, and ``builder(records, first)`` makes
    the point dicts with a comprehension generated for the layout (a dict
    display with fixed keys builds three times faster than ``dict(zip())``,
    and point dicts are most of a poll response's cost).
    """
    cached = _RUN_READERS.get((key, prefix_code))
    if cached is None:
        layout = POINT_LAYOUTS[key]
        codes = _INDEX_CODES[prefix_code] + "".join(_STRUCT_CODES[k] for _, k in layout)
        names = [name for name, _ in layout]
        slots = [f"v{n}" for n in range(len(names) + (1 if prefix_code else 0))]
        if prefix_code:
            items = ", ".join(f"{n!r}: {v}" for n, v in zip(["index", *names], slots))
            source = (f"lambda records, first: [{{{items}}} for "
                      f"({', '.join(slots)},) in records]")
        else:
            items = ", ".join(f"{n!r}: {v}" for n, v in zip(names, slots))
            source = (f"lambda records, first: [{{'index': first + i, {items}}} for "
                      f"i, ({', '.join(slots)},) in enumerate(records)]")
        builder = eval(source, {})  # noqa: S307 - source made above from the table
        cached = _RUN_READERS[key, prefix_code] = (struct.Struct("<" + codes), builder)
    return cached


_RUN_READERS: dict = {}
_TIMELESS = frozenset(key for key, fast in FAST_LAYOUTS.items() if fast.time_at < 0)

# Bits per object of the packed groups (objects come in whole octets together).
PACKED_BITS = {(1, 1): 1, (3, 1): 2, (10, 1): 1, (12, 3): 1, (80, 1): 1}

# Octet strings, virtual terminal objects: the variation is the length.
SIZED_BY_VARIATION = {110, 111, 112, 113}

CLASS_DATA_GROUP = 60  # class 0-3 requests: never carry object data
DEVICE_ATTRIBUTES_GROUP = 0
FILE_CONTROL_GROUP = 70
TIME_GROUP = 50
AUTHENTICATION_GROUP = 120


# --- object header --------------------------------------------------------------

QUALIFIER = cs.BitStruct(
    "reserved" / cs.Flag,
    "prefix_code" / cs.BitsInteger(3),
    "range_code" / cs.BitsInteger(4),
)

OBJECT_HEADER = cs.Struct(
    "group" / cs.Int8ul,
    "variation" / cs.Int8ul,
    "qualifier" / QUALIFIER,
    "range" / cs.Switch(
        cs.this.qualifier.range_code,
        {
            0: cs.Struct("start" / cs.Int8ul, "stop" / cs.Int8ul),
            1: cs.Struct("start" / cs.Int16ul, "stop" / cs.Int16ul),
            2: cs.Struct("start" / cs.Int32ul, "stop" / cs.Int32ul),
            3: cs.Struct("start" / cs.Int8ul, "stop" / cs.Int8ul),
            4: cs.Struct("start" / cs.Int16ul, "stop" / cs.Int16ul),
            5: cs.Struct("start" / cs.Int32ul, "stop" / cs.Int32ul),
            6: cs.Pass,
            7: cs.Struct("count" / cs.Int8ul),
            8: cs.Struct("count" / cs.Int16ul),
            9: cs.Struct("count" / cs.Int32ul),
            11: cs.Struct("count" / cs.Int8ul),
        },
        cs.Error,  # range codes 10, 12 to 15 are reserved
    ),
)


class ObjectError(ValueError):
    """The object headers contradict the standard or run past the fragment.

    ``header`` is the object header read so far, when its first three octets
    were there, so that a malformed fragment still shows what it named.
    """

    def __init__(self, reason: str, header: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.header = header


_INT = int.from_bytes


def parse_header(data: bytes, pos: int) -> tuple[dict[str, Any], int, int]:
    """Read one object header at ``pos``: (header dict, object count, next pos).

    The count is the number of objects that follow (0 for "all objects").
    """
    end = len(data)
    if pos + 3 > end:
        raise ObjectError(f"object header cut short at offset {pos}")
    group = data[pos]
    variation = data[pos + 1]
    qualifier = data[pos + 2]
    prefix_code = (qualifier >> 4) & 0x07
    range_code = qualifier & 0x0F
    header: dict[str, Any] = {
        "group": group,
        "variation": variation,
        "qualifier": qualifier,
        "prefix_code": prefix_code,
        "range_code": range_code,
    }
    pos += 3
    if prefix_code == 7:
        raise ObjectError(f"g{group}v{variation}: reserved prefix code 7", header)
    width = _START_STOP_SIZES.get(range_code)
    if width is not None:
        if pos + 2 * width > end:
            raise ObjectError(f"g{group}v{variation}: range cut short", header)
        if width == 1:  # the usual widths without slicing
            start = data[pos]
            stop = data[pos + 1]
        elif width == 2:
            start = data[pos] | data[pos + 1] << 8
            stop = data[pos + 2] | data[pos + 3] << 8
        else:
            start = _INT(data[pos : pos + 4], "little")
            stop = _INT(data[pos + 4 : pos + 8], "little")
        pos += 2 * width
        header["start"] = start
        header["stop"] = stop
        if stop < start:
            raise ObjectError(
                f"g{group}v{variation}: range stop {stop} < start {start}", header)
        count = stop - start + 1
    elif range_code == 6:
        count = 0
    else:
        width = _COUNT_SIZES.get(range_code)
        if width is None:
            raise ObjectError(
                f"g{group}v{variation}: reserved range code {range_code}", header)
        if pos + width > end:
            raise ObjectError(f"g{group}v{variation}: count cut short", header)
        count = _INT(data[pos : pos + width], "little")
        pos += width
        header["count"] = count
    return header, count, pos


# --- object data ------------------------------------------------------------------


def _point(fast: _Fast, data: bytes, pos: int) -> dict[str, Any]:
    values = fast.unpack(data, pos)
    if fast.time_at >= 0:
        values = list(values)
        values[fast.time_at] = _INT(values[fast.time_at], "little")
    return dict(zip(fast.names, values))


def _attribute(variation: int, body: bytes) -> dict[str, Any]:
    """Group 0 device attribute: data type code, length, value (table A-2)."""
    if body[:1] == b"\x00":
        return {"data_type": 0, "length": 0, "value": None}
    if len(body) < 2:
        raise ObjectError(f"g0v{variation}: attribute shorter than its type and length")
    data_type = body[0]
    length = body[1]
    raw = body[2 : 2 + length]
    if len(raw) < length:
        raise ObjectError(f"g0v{variation}: attribute value cut short")
    value: Any
    if data_type == 1:  # VSTR, visible string
        value = raw.decode("latin-1")
    elif data_type == 2:  # UINT
        value = _INT(raw, "little")
    elif data_type == 3:  # INT
        value = _INT(raw, "little", signed=True)
    elif data_type == 4 and length in (4, 8):  # FLT
        value = struct.unpack("<f" if length == 4 else "<d", raw)[0]
    elif data_type == 254 and length % 2 == 0:  # list of (variation, properties)
        value = [{"variation": raw[i], "properties": raw[i + 1]}
                 for i in range(0, length, 2)]
    else:  # OSTR, BSTR, others: octets
        value = raw.hex()
    return {"data_type": data_type, "length": length, "value": value}


def attribute_size(body: bytes, pos: int) -> int:
    """Octets of the group 0 attribute at ``pos``: type, length and value.

    Data type code 0 names no type and is read, as tshark reads it, as that
    one octet alone.
    """
    if pos + 1 <= len(body) and body[pos] == 0:
        return 1
    if pos + 2 > len(body):
        raise ObjectError("g0: attribute cut short")
    return 2 + body[pos + 1]


def _file_object(variation: int, body: bytes) -> dict[str, Any]:
    """Group 70 file objects the standard fixes (v3 to v7); others stay raw."""
    out: dict[str, Any] = {}
    if variation == 3 and len(body) >= 26:  # file command
        offset, size = struct.unpack_from("<HH", body, 0)
        out["time_of_creation"] = _INT(body[4:10], "little")
        (out["permissions"], out["authentication_key"], out["file_size"],
         out["operational_mode"], out["maximum_block_size"],
         out["request_id"]) = struct.unpack_from("<HIIHHH", body, 10)
        out["file_name"] = body[26 : 26 + size].decode("latin-1")
    elif variation == 4 and len(body) >= 11:  # file command status
        (out["file_handle"], out["file_size"], out["maximum_block_size"],
         out["request_id"], out["status_code"]) = struct.unpack_from("<IIHHB", body)
        out["optional_text"] = body[13:].decode("latin-1")
    elif variation == 5 and len(body) >= 8:  # file transport
        out["file_handle"], block = struct.unpack_from("<II", body)
        out["block_number"] = block & 0x7FFFFFFF
        out["last_block"] = bool(block & 0x80000000)
        out["file_data"] = body[8:].hex()
    elif variation == 6 and len(body) >= 9:  # file transport status
        out["file_handle"], block, out["status_code"] = struct.unpack_from("<IIB", body)
        out["block_number"] = block & 0x7FFFFFFF
        out["last_block"] = bool(block & 0x80000000)
    elif variation == 7 and len(body) >= 20:  # file descriptor
        offset, size, out["file_type"], out["file_size"] = struct.unpack_from(
            "<HHHI", body)
        out["time_of_creation"] = _INT(body[10:16], "little")
        out["permissions"], out["request_id"] = struct.unpack_from("<HH", body, 16)
        out["file_name"] = body[20 : 20 + size].decode("latin-1")
    else:
        out["raw"] = body.hex()
    return out


def decode_objects(
    data: bytes, pos: int, carries_data, point_limit: int = MAX_OBJECTS
) -> tuple[list[dict[str, Any]], str | None]:
    """Decode every object header from ``pos`` to the end of a fragment.

    ``carries_data(group, variation)`` says whether objects follow the header
    (the function code decides: a read request carries headers only).
    Returns the object headers, each with its ``points`` where decoded, and
    ``None`` or the reason decoding stopped early (the headers up to there
    are kept).
    """
    objects: list[dict[str, Any]] = []
    end = len(data)
    try:
        while pos < end:
            if len(objects) >= MAX_HEADERS:
                raise ObjectError(f"more than {MAX_HEADERS} object headers")
            header, count, pos = parse_header(data, pos)
            objects.append(header)
            group = header["group"]
            variation = header["variation"]
            prefix_code = header["prefix_code"]
            if count > MAX_OBJECTS:
                raise ObjectError(f"g{group}v{variation}: {count} objects claimed")
            with_data = carries_data(group, variation)
            if prefix_code == 0 and not with_data:
                continue
            pos = _decode_points(data, pos, header, count, with_data, point_limit)
    except ObjectError as exc:
        if exc.header is not None and (not objects or objects[-1] is not exc.header):
            objects.append(exc.header)
        return objects, str(exc)
    except _RawRest as rest:
        objects[-1]["raw"] = data[rest.pos :].hex()
        objects[-1]["undecoded"] = rest.reason
    return objects, None


class _RawRest(Exception):
    def __init__(self, pos: int, reason: str) -> None:
        self.pos = pos
        self.reason = reason


def _decode_points(data, pos, header, count, with_data, point_limit) -> int:
    group = header["group"]
    variation = header["variation"]
    prefix_code = header["prefix_code"]
    end = len(data)
    key = (group, variation)

    # Fixed-size objects without a time, with no prefix or an index prefix:
    # the common shape of polls and responses, read in one pass.
    if with_data and prefix_code < 4 and key in _TIMELESS and count <= point_limit:
        reader, builder = _RUN_READERS.get((key, prefix_code)) or _run_reader(
            key, prefix_code)
        size = reader.size * count
        if pos + size > end:
            raise ObjectError(f"g{group}v{variation}: {count} objects cut short")
        records = reader.iter_unpack(data[pos : pos + size])
        header["points"] = builder(records, header.get("start", 0))
        return pos + size

    name = f"g{group}v{variation}"

    # Packed bits: the range says which indexes, the octets hold them in order.
    bits = PACKED_BITS.get(key)
    if bits is not None and with_data and prefix_code == 0:
        octets = (count * bits + 7) // 8
        if pos + octets > end:
            raise ObjectError(f"{name}: {count} packed objects cut short")
        first = header.get("start", 0)
        mask = (1 << bits) - 1
        chunk = data[pos : pos + octets]
        value = _INT(chunk, "little")
        if count <= point_limit:
            header["points"] = [
                {"index": first + i, "value": (value >> (i * bits)) & mask}
                for i in range(count)
            ]
        return pos + octets

    # Empty strings (variation 0 of the string groups) take no octets: the
    # range says how many there are and no per-object record is kept, so a
    # short header cannot make thousands of points.
    if with_data and group in SIZED_BY_VARIATION and not variation and not prefix_code:
        header["empty_strings"] = count
        return pos

    prefix_size = PREFIX_SIZES[prefix_code]
    fast = FAST_LAYOUTS.get(key) if with_data else None
    if with_data and fast is None and prefix_code < 4:
        if group in SIZED_BY_VARIATION and variation:
            fixed = variation
        elif group == DEVICE_ATTRIBUTES_GROUP:
            fixed = -1  # type and length octets say
        else:
            # Limitation: an object of a group or variation not in the tables,
            # sent without a size prefix, has no known size, so decoding of
            # its fragment stops there and the rest is kept as hex ("raw",
            # with the reason in "undecoded"). A layout for the group lifts it.
            raise _RawRest(pos, f"{name}: object size unknown without a size prefix")
    else:
        fixed = fast.size if fast is not None else 0
    first = header.get("start", 0)
    points = []
    for number in range(count):
        if prefix_size:
            if pos + prefix_size > end:
                raise ObjectError(f"{name}: object prefix cut short")
            prefix = _INT(data[pos : pos + prefix_size], "little")
            pos += prefix_size
        else:
            prefix = first + number
        if not with_data:
            points.append({"index": prefix})
            continue
        if prefix_code >= 4:
            size = prefix
            point: dict[str, Any] = {}
        else:
            size = fixed if fixed >= 0 else attribute_size(data, pos)
            point = {"index": prefix}
        if pos + size > end:
            raise ObjectError(f"{name}: object {number} cut short")
        body = data[pos : pos + size]
        if fast is not None and size == fast.size:
            point.update(_point(fast, data, pos))
        elif group == DEVICE_ATTRIBUTES_GROUP:
            point.update(_attribute(variation, body))
        elif group == FILE_CONTROL_GROUP:
            point.update(_file_object(variation, body))
        elif group in SIZED_BY_VARIATION:
            point["value"] = body.hex()
        else:
            # Limitation: Secure Authentication objects (group 120) and other
            # size-prefixed objects without a decoder are kept as hex under
            # "raw"; the SAv5 exchange (challenge, reply, key status) is not
            # followed. Decoding group 120 variations 1 to 15 would lift it.
            point["raw"] = body.hex()
        if prefix_code >= 4:
            point["size"] = size
        pos += size
        if len(points) < point_limit:
            points.append(point)
    header["points"] = points
    return pos
