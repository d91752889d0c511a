"""The ``otdpi`` command: a thin shell over the library (inventory, dissect, protocols, fuzz).

Errors in the user's input (a missing file, a file that is not a capture, an
unknown protocol) print one line and exit with status 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from otdpi.errors import OtdpiError, UsageError

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except OtdpiError as exc:
        print(f"otdpi: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `otdpi dissect x.pcap | head` closes our stdout early: not an error.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("otdpi: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from otdpi import __version__

    parser = argparse.ArgumentParser(
        prog="otdpi",
        description="Deep packet inspection for industrial, medical and fab networks.",
    )
    parser.add_argument("--version", action="version", version=f"otdpi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    inv = commands.add_parser(
        "inventory", help="list the devices in captures (table, JSON or CSV)",
        description="Read captures and list every device seen, with its protocols, "
        "roles, peers and identity.",
    )
    inv.add_argument("captures", nargs="+", metavar="CAPTURE",
                     help="pcap or pcapng file, optionally gzip-compressed")
    inv.add_argument("-o", "--output", metavar="FILE",
                     help="also write the inventory to FILE (format from its suffix)")
    inv.add_argument("--format", choices=("json", "csv"),
                     help="format of --output when its suffix does not say")
    _add_protocol_option(inv)
    inv.set_defaults(run=_run_inventory)

    dis = commands.add_parser(
        "dissect", help="write every decoded message as JSON Lines",
        description="Write one JSON object per decoded message, with its frame number.",
    )
    dis.add_argument("captures", nargs="+", metavar="CAPTURE")
    dis.add_argument("-o", "--output", metavar="FILE", help="write to FILE, not stdout")
    _add_protocol_option(dis)
    dis.set_defaults(run=_run_dissect)

    prot = commands.add_parser("protocols", help="list the installed dissectors")
    prot.set_defaults(run=_run_protocols)

    from otdpi.fuzzing.cli import add_fuzz_commands

    add_fuzz_commands(commands)
    return parser


def _add_protocol_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--protocol", action="append", metavar="NAME",
                        help="only this dissector (repeatable; see `otdpi protocols`)")
    limits = parser.add_argument_group("flow-table limits (memory stays bounded by them)")
    limits.add_argument("--max-flows", type=_positive_int, metavar="N",
                        help="open flows kept at once; the oldest is evicted beyond "
                        "(default 200000)")
    limits.add_argument("--max-flow-buffer", type=_positive_int, metavar="BYTES",
                        help="out-of-order bytes held per direction before a gap is "
                        "declared (default 262144)")
    limits.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                        help="capture seconds of silence that end a flow (default 600)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def _flow_config(args: argparse.Namespace):
    from otdpi.flows import FlowConfig

    config = FlowConfig()
    if args.max_flows is not None:
        config.max_flows = args.max_flows
    if args.max_flow_buffer is not None:
        config.max_flow_buffer = args.max_flow_buffer
    if args.idle_timeout is not None:
        config.idle_timeout = args.idle_timeout
    return config


# -- commands -------------------------------------------------------------------


def _run_protocols(args: argparse.Namespace) -> int:
    from otdpi.registry import available

    for name, cls in sorted(available().items()):
        ports = ",".join(str(p) for p in cls.default_ports) or "-"
        transports = "/".join(cls.transports)
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
        print(f"{name:<12} {transports:<8} {ports:<12} {doc[0] if doc else ''}")
    return 0


def _run_dissect(args: argparse.Namespace) -> int:
    import orjson

    from otdpi.engine import Engine

    _check_inputs(args.captures)
    # orjson rather than the standard library's encoder: it writes the same JSON
    # several times faster, and encoding is most of what this command costs.
    # NaN and infinities become null, which keeps every line valid JSON.
    options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
    dumps = orjson.dumps
    with _progress(args.captures) as progress, _open_binary_output(args.output) as out:
        engine = Engine(args.protocol, flow_config=_flow_config(args), progress=progress)
        write = out.write
        for path in args.captures:
            progress.start(path)
            for message in engine.messages(path):
                write(dumps(message.to_dict(), default=str, option=options))
    _report_problems(engine)
    return 0


def _run_inventory(args: argparse.Namespace) -> int:
    from otdpi.engine import Engine
    from otdpi.inventory import Inventory

    _check_inputs(args.captures)
    output_format = _output_format(args.output, args.format)
    inventory = Inventory()
    with _progress(args.captures) as progress:
        engine = Engine(args.protocol, flow_config=_flow_config(args), progress=progress)
        for path in args.captures:
            progress.start(path)
            inventory.update(engine.messages(path), capture=os.fspath(path))
    assets = inventory.assets()
    _print_table(assets, engine)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            if output_format == "csv":
                _write_csv(assets, out)
            else:
                json.dump({"assets": assets, "counters": dict(engine.counters)}, out,
                          indent=2, default=str)
                out.write("\n")
    _report_problems(engine)
    return 0


# -- helpers ------------------------------------------------------------------


def _check_inputs(paths: Sequence[str]) -> None:
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file")
        if os.path.isdir(path):
            raise UsageError(f"{path}: is a directory, not a capture file")


def _output_format(path: str | None, given: str | None) -> str:
    if given:
        return given
    if not path:
        return "json"
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".json", ".csv"):
        return suffix[1:]
    raise UsageError(f"{path}: cannot tell the format from the suffix; use --format json|csv")


@contextmanager
def _open_binary_output(path: str | None):
    if path is None:
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = open(path, "wb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    with handle:
        yield handle


class _Progress:
    """A progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, bar) -> None:
        self._bar = bar
        self._task = None

    def start(self, path: str) -> None:
        if self._bar is not None:
            if self._task is not None:
                self._bar.remove_task(self._task)
            self._task = self._bar.add_task(os.path.basename(path), total=None)

    def __call__(self, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total or None)


@contextmanager
def _progress(paths: Sequence[str]):
    if not sys.stderr.isatty():
        yield _Progress(None)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    with bar:
        yield _Progress(bar)


def _summary_columns(asset: dict[str, Any]) -> dict[str, str]:
    summary = asset["summary"]
    product = summary.get("product_name") or summary.get("model") or ""
    if summary.get("product_code") and summary.get("product_code") not in product:
        product = f"{product} ({summary['product_code']})" if product else summary["product_code"]
    protocols = ", ".join(f"{p} {'/'.join(i['roles'])}" for p, i in asset["protocols"].items())
    unit_ids = asset["stations"].get("modbus", {}).get("unit_id", [])
    return {
        "asset": asset["key"],
        "ip": ", ".join(asset["ips"]),
        "mac_vendor": asset["mac_vendor"] or "",
        "role": asset["role"],
        "protocols": protocols,
        "unit_ids": ",".join(str(u) for u in unit_ids),
        "vendor": str(summary.get("vendor", "")),
        "product": str(product),
        "revision": str(summary.get("revision", "")),
        "peers": str(len({p["ip"] for p in asset["peers"]})),
    }


def _print_table(assets: list[dict[str, Any]], engine) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(assets)} assets", title_justify="left")
    headers = ["asset", "ip", "mac_vendor", "role", "protocols", "unit_ids", "vendor",
               "product", "revision", "peers"]
    for header in headers:
        table.add_column(header.replace("_", " "), overflow="fold")
    for asset in assets:
        row = _summary_columns(asset)
        table.add_row(*(row[h] for h in headers))
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    counters = engine.counters
    console.print(
        f"{counters['packets']} packets, {counters['messages']} messages "
        f"({counters['messages_malformed']} malformed), {counters['flows']} flows "
        f"({counters['flows_unknown_protocol']} of unknown protocol)",
        highlight=False,
    )


def _write_csv(assets: list[dict[str, Any]], out: TextIO) -> None:
    rows = [_summary_columns(a) for a in assets]
    for row, asset in zip(rows, assets):
        row["macs"] = " ".join(asset["macs"])
        row["first_seen"] = asset["first_seen"]
        row["last_seen"] = asset["last_seen"]
        for attribute, claims in asset["identity"].items():
            row[f"identity.{attribute}"] = " | ".join(str(c["value"]) for c in claims)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


# Counters that say a limit cut into what was decoded, and the option to raise it.
_LIMIT_COUNTERS = {
    "flows_evicted_table_full": "--max-flows",
    "tcp_buffer_cap_hits": "--max-flow-buffer",
}


def _report_problems(engine) -> None:
    for counter, option in _LIMIT_COUNTERS.items():
        if engine.counters[counter]:
            print(f"otdpi: warning: {counter} = {engine.counters[counter]}; raise "
                  f"{option} if memory allows", file=sys.stderr)
    for problem in engine.problems[:20]:
        print(f"otdpi: warning: {problem.path}: {problem.detail}", file=sys.stderr)
    hidden = engine.counters["capture_problems"] - min(len(engine.problems), 20)
    if hidden > 0:
        print(f"otdpi: warning: {hidden} more capture problems not shown", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
