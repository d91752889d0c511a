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
    inv.add_argument("captures", nargs="*", metavar="CAPTURE",
                     help="pcap or pcapng file, optionally gzip-compressed")
    inv.add_argument("-o", "--output", metavar="FILE",
                     help="also write the inventory to FILE (format from its suffix)")
    inv.add_argument("--format", choices=("json", "csv", "cyclonedx"),
                     help="format of --output when its suffix does not say")
    inv.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                     help="worker processes; a lone capture is split by flow hash "
                     "(default 1)")
    inv.add_argument("--dask", metavar="ADDRESS",
                     help="run the work on this Dask distributed scheduler "
                     "(tcp://host:8786) instead of local processes")
    _add_live_options(inv)
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

    rep = commands.add_parser(
        "report", help="write a self-contained HTML report (assets, map, alerts)",
        description="Read captures, or learner stores (the --db files of `otdpi "
        "learn`, `detect` and `watch`), and write one HTML file that opens offline: "
        "the asset table (sortable, filterable), a communication map, per-protocol "
        "statistics and the alerts on a timeline. A store alone is enough: it keeps "
        "the inventory of the runs that saved into it, and their alerts.",
    )
    rep.add_argument("captures", nargs="+", metavar="CAPTURE_OR_STORE",
                     help="pcap/pcapng files and otdpi stores, in any mix")
    rep.add_argument("-o", "--output", metavar="FILE", default="report.html",
                     help="the HTML file to write (default report.html)")
    rep.add_argument("--alerts", metavar="FILE",
                     help="alerts as JSON Lines (from `otdpi detect`) to show")
    rep.add_argument("--db", metavar="FILE",
                     help="also show the alerts kept in this learner store")
    rep.add_argument("--title", default=None, help="the report's heading")
    _add_protocol_option(rep)
    rep.set_defaults(run=_run_report)

    prot = commands.add_parser("protocols", help="list the installed dissectors")
    prot.set_defaults(run=_run_protocols)
    _add_learner_commands(commands)

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


def _add_live_options(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group(
        "live capture (through dumpcap; Ctrl-C stops and keeps what was seen)")
    live.add_argument("-i", "--interface", metavar="IFACE",
                      help="capture on this interface instead of reading files")
    live.add_argument("-f", "--filter", metavar="BPF",
                      help="capture filter, e.g. 'tcp port 502'")
    live.add_argument("--duration", type=float, metavar="SECONDS",
                      help="stop capturing after this long")
    live.add_argument("--count", type=_positive_int, metavar="N",
                      help="stop capturing after N packets")
    live.add_argument("--update-every", type=float, default=10.0, metavar="SECONDS",
                      help="while capturing, rewrite --output this often (default 10)")


def _sources(args: argparse.Namespace) -> None:
    """Check that the command was given captures or an interface, not both."""
    if args.interface and args.captures:
        raise UsageError("give capture files or --interface, not both")
    if not args.interface and not args.captures:
        raise UsageError("no capture given (name capture files, or --interface IFACE)")
    if args.captures:
        _check_inputs(args.captures)


@contextmanager
def _stop_on_interrupt(engine):
    """Ctrl-C ends a live capture cleanly: dumpcap flushes, open flows are kept."""
    import signal

    def stop(signum, frame):
        capture = getattr(engine, "capture", None)
        if capture is None:
            raise KeyboardInterrupt
        capture.stop()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
        ports = ",".join([str(p) for p in cls.default_ports]
                         + [f"0x{e:04x}" for e in cls.ethertypes]) or "-"
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
    with _progress(args.captures) as progress, _open_output(args.output, binary=True) as out:
        engine = Engine(args.protocol, flow_config=_flow_config(args), progress=progress)
        write = out.write
        for path in args.captures:
            progress.start(path)
            # Frame numbers count within one capture, so each line names its own.
            capture = os.fspath(path)
            for message in engine.messages(path):
                record = message.to_dict()
                record["capture"] = capture
                write(dumps(record, default=str, option=options))
    _report_problems(engine.counters, engine.problems)
    return 0


def _run_inventory(args: argparse.Namespace) -> int:
    from otdpi.engine import Engine
    from otdpi.inventory import Inventory

    _sources(args)
    output_format = _output_format(args.output, args.format)
    _check_output(args.output)
    if args.interface:
        engine = Engine(args.protocol, flow_config=_flow_config(args))
        inventory = Inventory()
        _live_inventory(args, engine, inventory, output_format)
        counters, problems = engine.counters, engine.problems
    elif args.jobs > 1 or args.dask:
        from otdpi.parallel import inventory_in_parallel

        result = inventory_in_parallel(args.captures, args.jobs, protocols=args.protocol,
                                       flow_config=_flow_config(args),
                                       dask_address=args.dask)
        inventory, counters, problems = result.inventory, result.counters, result.problems
    else:
        inventory = Inventory()
        with _progress(args.captures) as progress:
            engine = Engine(args.protocol, flow_config=_flow_config(args),
                            progress=progress)
            for path in args.captures:
                progress.start(path)
                inventory.update(engine.messages(path), capture=os.fspath(path))
        counters, problems = engine.counters, engine.problems
    assets = inventory.assets()
    _print_table(assets, counters)
    if args.output:
        _write_inventory(args.output, output_format, assets, counters)
        print(f"wrote {args.output} ({output_format})", file=sys.stderr)
    _report_problems(counters, problems)
    return 0


def _live_inventory(args, engine, inventory, output_format: str) -> None:
    import time

    source = f"live:{args.interface}"
    next_update = time.monotonic() + args.update_every
    with _stop_on_interrupt(engine):
        for message in engine.live(args.interface, args.filter,
                                   duration=args.duration, packets=args.count):
            inventory.add(message, capture=source)
            if args.output and time.monotonic() >= next_update:
                _write_inventory(args.output, output_format, inventory.assets(),
                                 engine.counters)
                next_update = time.monotonic() + args.update_every


def _write_inventory(path: str, output_format: str, assets, counters) -> None:
    # Written beside the target and renamed over it, so that a reader (or a
    # live run stopped half-way) never sees half a file.
    partial = f"{path}.partial"
    try:
        out = open(partial, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None
    with out:
        if output_format == "csv":
            _write_csv(assets, out)
        elif output_format == "cyclonedx":
            from otdpi import __version__
            from otdpi.export import cyclonedx_json

            out.write(cyclonedx_json(assets, __version__))
            out.write("\n")
        else:
            json.dump({"assets": assets, "counters": dict(counters)}, out, indent=2,
                      default=str)
            out.write("\n")
    try:
        os.replace(partial, path)
    except OSError as exc:
        os.unlink(partial)
        raise UsageError(f"{path}: cannot write: {exc.strerror}") from None


def _run_report(args: argparse.Namespace) -> int:
    from otdpi.engine import Engine
    from otdpi.report import Observations, render

    _check_inputs(args.captures)
    _check_output(args.output)
    alerts = _read_alerts(args.alerts) if args.alerts else []
    stores = [path for path in args.captures if _is_store(path)]
    captures = [path for path in args.captures if path not in stores]
    if args.db:
        from otdpi.learner import Store

        with Store(args.db, read_only=True) as store:
            alerts += store.alerts()
    observations = Observations()
    for path in stores:
        observations.merge(_observations_of_store(path, alerts))
    engine = None
    if captures:
        with _progress(captures) as progress:
            engine = Engine(args.protocol, flow_config=_flow_config(args),
                            progress=progress)
            for path in captures:
                progress.start(path)
                capture = os.fspath(path)
                for message in engine.messages(path):
                    observations.add(message, capture)
        observations.counters.update(engine.counters)
        observations.sources.extend(captures)
    title = args.title or f"otdpi report: {', '.join(map(os.path.basename, args.captures))}"
    html = render(observations.inventory.assets(), observations.statistics, alerts,
                  title=title, sources=observations.sources,
                  counters=dict(observations.counters))
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(html)
    except OSError as exc:
        raise UsageError(f"{args.output}: cannot write: {exc.strerror}") from None
    print(f"wrote {args.output}", file=sys.stderr)
    if engine is not None:
        _report_problems(engine.counters, engine.problems)
    return 0


def _is_store(path: str) -> bool:
    """Whether ``path`` is an SQLite file (an otdpi store) rather than a capture."""
    with open(path, "rb") as file:
        return file.read(16) == b"SQLite format 3\x00"


def _observations_of_store(path: str, alerts: list[dict[str, Any]]):
    """The inventory kept in the store at ``path``; its alerts are added to ``alerts``."""
    from otdpi.learner import Store
    from otdpi.report import Observations

    with Store(path, read_only=True) as store:
        document = store.inventory()
        alerts += store.alerts()
    if document is None:
        raise UsageError(
            f"{path}: this store keeps no inventory (it was written before otdpi "
            "kept one, or only by `--no-save` runs); run `otdpi learn CAPTURE... "
            f"--db {path}` or give the captures as well"
        )
    try:
        return Observations.from_json(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read its inventory: {exc}") from None


def _read_alerts(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    alerts = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                alerts.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not a JSON alert: {exc.msg}") from None
    return alerts


# -- helpers ------------------------------------------------------------------


def _check_output(path: str | None) -> None:
    """Refuse an output that cannot be written before reading any capture."""
    if path is None:
        return
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a file to write")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{path}: cannot write: no folder {folder}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{path}: cannot write: permission denied in {folder}")


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
    lowered = path.lower()
    if lowered.endswith((".cdx.json", ".cdx")):
        return "cyclonedx"
    suffix = os.path.splitext(lowered)[1]
    if suffix in (".json", ".csv"):
        return suffix[1:]
    raise UsageError(f"{path}: cannot tell the format from the suffix (.json, .csv, "
                     ".cdx.json); use --format json|csv|cyclonedx")


@contextmanager
def _open_output(path: str | None, binary: bool = False):
    """``path`` opened for writing (text, or bytes for ``binary``); stdout without one."""
    if path is None:
        if not binary:
            yield sys.stdout
            return
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        handle = open(path, "wb") if binary else open(path, "w", encoding="utf-8")
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
    from otdpi.inventory import headline

    facts = headline(asset["summary"], asset.get("identity"))
    product = facts["model"]
    if facts["part_number"] and facts["part_number"] not in product:
        product = f"{product} ({facts['part_number']})" if product else facts["part_number"]
    protocols = ", ".join(f"{p} {'/'.join(i['roles'])}" for p, i in asset["protocols"].items())
    unit_ids = asset["stations"].get("modbus", {}).get("unit_id", [])
    # Addresses below IP: Modbus unit ids behind a gateway, and the link or
    # session addresses other protocols claim (dnp3_address, hsms_address...).
    addresses = [str(u) for u in unit_ids]
    for attribute, claims in sorted(asset.get("identity", {}).items()):
        if attribute.endswith("_address"):
            protocol = attribute[: -len("_address")]
            addresses += [f"{protocol} {c['value']}" for c in claims]
    return {
        "asset": asset["key"],
        "ip": ", ".join(asset["ips"]),
        "mac_vendor": asset["mac_vendor"] or "",
        "role": asset["role"],
        "protocols": protocols,
        "unit_ids": ", ".join(addresses),
        "vendor": facts["vendor"],
        "product": product,
        "revision": facts["firmware"],
        "peers": str(len({p["ip"] for p in asset["peers"]})),
    }


def _print_table(assets: list[dict[str, Any]], counters) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(assets)} assets", title_justify="left")
    headers = ["asset", "ip", "mac_vendor", "role", "protocols", "unit_ids", "vendor",
               "product", "revision", "peers"]
    for header in headers:
        title = "unit ids / addresses" if header == "unit_ids" else header.replace("_", " ")
        table.add_column(title, overflow="fold")
    for asset in assets:
        row = _summary_columns(asset)
        table.add_row(*(Text(row[h]) for h in headers))
    # Cell text comes off the wire: no markup, no ":name:" emoji codes (a MAC
    # such as 1c:cd:47 would otherwise print a disc), no guessed highlighting.
    console = Console(width=None if sys.stdout.isatty() else 160, markup=False,
                      emoji=False, highlight=False)
    console.print(table)
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


def _report_problems(counters, problems) -> None:
    for counter, option in _LIMIT_COUNTERS.items():
        if counters[counter]:
            print(f"otdpi: warning: {counter} = {counters[counter]}; raise "
                  f"{option} if memory allows", file=sys.stderr)
    for problem in problems[:20]:
        print(f"otdpi: warning: {problem.path}: {problem.detail}", file=sys.stderr)
    hidden = counters["capture_problems"] - min(len(problems), 20)
    if hidden > 0:
        print(f"otdpi: warning: {hidden} more capture problems not shown", file=sys.stderr)


# -- learner commands: learn, detect, watch -------------------------------------


def _add_learner_commands(commands) -> None:
    from otdpi.learner import DEFAULT_DB

    def common(parser, alerts: bool) -> None:
        live = parser.prog.endswith("watch")
        parser.add_argument("captures", nargs="*" if live else "+", metavar="CAPTURE")
        if live:
            _add_live_options(parser)
        parser.add_argument("--db", metavar="FILE", default=DEFAULT_DB,
                            help=f"SQLite store of baselines and alerts (default "
                            f"./{DEFAULT_DB}); runs accumulate in it")
        parser.add_argument("--import", dest="import_json", metavar="FILE",
                            help="merge a baseline exported as JSON before reading")
        parser.add_argument("--export", dest="export_json", metavar="FILE",
                            help="write the resulting baseline as JSON")
        parser.add_argument("--no-save", action="store_true",
                            help="leave the store as it was")
        if alerts:
            parser.add_argument("-o", "--output", metavar="FILE",
                                help="write alerts as JSON Lines to FILE, not stdout")
            parser.add_argument("--accept-after", metavar="DURATION", default="1d",
                                help="what is new becomes normal after this long "
                                "(default 1d; s, m, h, d suffixes)")
        _add_protocol_option(parser)

    learn = commands.add_parser(
        "learn", help="learn per-device baselines from captures into the store",
        description="Learn what each device normally does and merge it into the "
        "baseline kept in the store.")
    common(learn, alerts=False)
    learn.add_argument("-j", "--jobs", type=_positive_int, default=1, metavar="N",
                       help="worker processes, a capture each (default 1)")
    learn.add_argument("--dask", metavar="ADDRESS",
                       help="learn on this Dask distributed scheduler instead")
    learn.set_defaults(run=_run_learn)

    detect = commands.add_parser(
        "detect", help="score captures against the stored baseline; alerts as JSON Lines",
        description="Compare captures with the stored baseline, write alerts as JSON "
        "Lines and a summary, and keep learning.")
    common(detect, alerts=True)
    detect.set_defaults(run=_run_detect)

    watch = commands.add_parser(
        "watch", help="learn from the start of the captures, then detect, in one pass",
        description="Learn for a span of capture time (or a share of the captures), "
        "then detect while learning goes on.")
    common(watch, alerts=True)
    span = watch.add_mutually_exclusive_group(required=True)
    span.add_argument("--learn-for", metavar="DURATION",
                      help="capture time spent learning only (e.g. 90s, 10m, 14d)")
    span.add_argument("--learn-share", metavar="FRACTION", type=float,
                      help="share (0 to 1) of the captures' time span spent learning")
    watch.set_defaults(run=_run_watch)


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``2h`` or ``14d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise UsageError(f"{text!r}: not a duration (like 90s, 10m, 2h, 14d)") from None


def _open_store(args):
    from otdpi.learner import Store, import_json

    store = None if args.no_save and not os.path.exists(args.db) else Store(args.db)
    baseline = store.load() if store is not None else None
    if args.import_json:
        imported = import_json(args.import_json)
        baseline = imported if baseline is None else baseline.merge(imported)
    if baseline is None:
        from otdpi.learner import Baseline

        baseline = Baseline()
    return store, baseline


def _finish_store(args, store, baseline, alerts, command, observations=None) -> None:
    from otdpi.learner import export_json

    if args.export_json:
        export_json(baseline, args.export_json)
    if store is not None:
        if not args.no_save:
            store.save(baseline, alerts, command=command,
                       captures=[os.path.abspath(p) for p in args.captures],
                       inventory=_stored_observations(store, observations))
        store.close()


def _stored_observations(store, observations):
    """The store's inventory document with this run's ``observations`` merged in."""
    if observations is None:
        return None
    from otdpi.report import Observations

    kept = store.inventory()
    if kept is not None:
        try:
            observations = Observations.from_json(kept).merge(observations)
        except (KeyError, TypeError, ValueError) as exc:
            # A document from another version: the new run's view replaces it
            # rather than failing the save of the baseline.
            print(f"otdpi: warning: {store.path}: stored inventory replaced, "
                  f"it could not be read ({exc})", file=sys.stderr)
    return observations.to_json()


def _new_observations(sources):
    from otdpi.report import Observations

    observations = Observations()
    observations.sources.extend(os.path.abspath(p) for p in sources)
    return observations


def _run_learn(args: argparse.Namespace) -> int:
    from otdpi.learner import Detector, feed_captures

    _check_inputs(args.captures)
    store, baseline = _open_store(args)
    if args.jobs > 1 or args.dask:
        from otdpi.parallel import learn_in_parallel

        result = learn_in_parallel(args.captures, args.jobs, protocols=args.protocol,
                                   dask_address=args.dask)
        learned, counters, problems = result.baseline, result.counters, result.problems
        observations = result.observations
    else:
        detector = Detector(learn_for=float("inf"))
        observations = _new_observations(args.captures)
        with _progress(args.captures) as progress:
            engine = feed_captures(detector, args.captures, args.protocol,
                                   progress=progress, on_message=observations.add)
        learned, counters, problems = detector.baseline, engine.counters, engine.problems
        observations.counters.update(counters)
    learned.learned_until = learned.last
    baseline.merge(learned)
    _finish_store(args, store, baseline, (), "learn", observations)
    # The baseline counts connection events among its messages; watch and
    # detect name them apart, so learn does too.
    print(f"learned {learned.messages} messages and connection events: "
          f"{len(learned.devices)} devices, "
          f"{len(learned.relations)} relationships; the store now holds "
          f"{baseline.messages} messages and events, {len(baseline.devices)} devices "
          f"({args.db if not args.no_save else 'not saved'})")
    _report_problems(counters, problems)
    return 0


def _run_detect(args: argparse.Namespace) -> int:
    from otdpi.learner import Detector

    _check_inputs(args.captures)
    store, baseline = _open_store(args)
    if not baseline.relations:
        print("otdpi: warning: the baseline is empty: everything will look new; "
              "run `otdpi learn` or `otdpi watch` first", file=sys.stderr)
    detector = Detector(baseline, learn_for=None,
                        accept_after=parse_duration(args.accept_after))
    return _detect(args, detector, store, "detect")


def _run_watch(args: argparse.Namespace) -> int:
    from otdpi.learner import Detector

    _sources(args)
    if args.interface and args.learn_for is None:
        raise UsageError("a live watch needs --learn-for (a share of an unending "
                         "capture has no meaning)")
    if args.learn_for is not None:
        learn_for = parse_duration(args.learn_for)
    else:
        if not 0 <= args.learn_share <= 1:
            raise UsageError("--learn-share takes a fraction between 0 and 1")
        first, last = _time_span(args.captures)
        learn_for = (last - first) * args.learn_share
    store, baseline = _open_store(args)
    detector = Detector(baseline, learn_for=learn_for,
                        accept_after=parse_duration(args.accept_after))
    return _detect(args, detector, store, "watch")


def _time_span(paths: Sequence[str]) -> tuple[float, float]:
    from otdpi.capture import open_capture

    first, last = float("inf"), float("-inf")
    for path in paths:
        with open_capture(path) as reader:
            for record in reader:
                ts = record[1]
                first = min(first, ts)
                last = max(last, ts)
    return (first, last) if first <= last else (0.0, 0.0)


def _detect(args, detector, store, command: str) -> int:
    from otdpi.learner import feed_captures

    if getattr(args, "interface", None):
        return _detect_live(args, detector, store, command)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                             default=str).encode
    observations = _new_observations(args.captures)
    with _progress(args.captures) as progress, _open_output(args.output) as out:
        def on_alert(alert):
            out.write(dumps(alert))
            out.write("\n")

        engine = feed_captures(detector, args.captures, args.protocol,
                               on_alert=on_alert, progress=progress,
                               on_message=observations.add)
    observations.counters.update(engine.counters)
    _finish_store(args, store, detector.baseline, detector.alerts, command,
                  observations)
    _print_alert_summary(detector, sys.stderr if args.output is None else sys.stdout,
                         engine.counters.get("messages"))
    _report_problems(engine.counters, engine.problems)
    return 0


@contextmanager
def _ticking(detector, out, dumps, every: float = 1.0):
    """While a live watch waits for packets, let the detector's clock run.

    A thread calls :meth:`~otdpi.learner.Detector.tick` with the wall-clock
    time (live capture timestamps are wall-clock too) every ``every`` seconds,
    so a polling that stops is noticed even when the whole network falls
    silent. The lock it yields serialises the detector and the output between
    that thread and the capture loop, which holds it per message.
    """
    import threading
    import time

    lock = threading.Lock()
    done = threading.Event()

    def run() -> None:
        while not done.wait(every):
            with lock:
                for alert in detector.tick(time.time()):
                    out.write(dumps(alert))
                    out.write("\n")
                    out.flush()

    thread = threading.Thread(target=run, name="otdpi-watch-clock", daemon=True)
    thread.start()
    try:
        yield lock
    finally:
        done.set()
        thread.join()


def _detect_live(args, detector, store, command: str) -> int:
    """Learn and detect on live traffic; save the store as it goes and on Ctrl-C."""
    import time

    from otdpi.engine import Engine
    from otdpi.learner import connection_event

    ended: list = []
    engine = Engine(args.protocol, flow_config=_flow_config(args),
                    on_flow_end=ended.append)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                             default=str).encode
    saved = 0  # alerts already in the store
    source = [f"live:{args.interface}"]
    from collections import Counter

    # Each save merges only what was seen since the last one into the store's
    # inventory, so nothing is counted twice however often it saves.
    unsaved = _new_observations([])
    unsaved.sources.extend(source)
    saved_counters: Counter[str] = Counter()

    def save() -> None:
        nonlocal saved, unsaved, saved_counters
        if store is not None and not args.no_save:
            unsaved.counters.update(Counter(engine.counters) - saved_counters)
            store.save(detector.baseline, detector.alerts[saved:], command=command,
                       captures=source, inventory=_stored_observations(store, unsaved))
            saved = len(detector.alerts)
            saved_counters = Counter(engine.counters)
            unsaved = _new_observations([])
            unsaved.sources.extend(source)

    next_save = time.monotonic() + args.update_every
    detector.new_capture()
    with _open_output(args.output) as out, _stop_on_interrupt(engine), \
            _ticking(detector, out, dumps) as lock:
        for message in engine.live(args.interface, args.filter,
                                   duration=args.duration, packets=args.count):
            with lock:
                unsaved.add(message, source[0])
                alerts = detector.feed(message)
                for flow in ended:
                    alerts += detector.feed(connection_event(flow))
                ended.clear()
                for alert in alerts:
                    out.write(dumps(alert))
                    out.write("\n")
                    out.flush()
                if time.monotonic() >= next_save:
                    save()
                    next_save = time.monotonic() + args.update_every
        for flow in ended:
            for alert in detector.feed(connection_event(flow)):
                out.write(dumps(alert))
                out.write("\n")
    detector.finish()
    save()
    if args.export_json:
        from otdpi.learner import export_json

        export_json(detector.baseline, args.export_json)
    if store is not None:
        store.close()
    _print_alert_summary(detector, sys.stderr if args.output is None else sys.stdout,
                         engine.counters.get("messages"))
    _report_problems(engine.counters, engine.problems)
    return 0


def _print_alert_summary(detector, stream, messages: int | None = None) -> None:
    """Alerts by model and the 20 highest. ``messages``: the engine's count of
    Messages (the detector also counts one connection event per flow)."""
    from collections import Counter

    alerts = detector.alerts
    by_model = Counter(a["model"] for a in alerts)
    if messages is None:
        scored = f"{detector.messages} messages"
    else:
        events = detector.messages - messages
        scored = f"{messages} messages" + (
            f" and {events} connection events" if events > 0 else "")
    print(f"{len(alerts)} alerts from {scored}"
          + (f" ({', '.join(f'{m} {n}' for m, n in by_model.most_common())})"
             if alerts else ""), file=stream)
    for alert in sorted(alerts, key=lambda a: -a["score"])[:20]:
        ids = ",".join(t["id"] for t in alert["techniques"])
        repeats = f" (+{alert['repeats']} repeats)" if alert["repeats"] else ""
        print(f"  {alert['time']}  {alert['score']:3d}  {alert['model']:<22} {ids:<16} "
              f"{alert['explanation']}{repeats}", file=stream)
    if len(alerts) > 20:
        print(f"  ... {len(alerts) - 20} more", file=stream)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
