"""The ``otdpi fuzz`` commands: run a campaign, list findings, replay one, list recipes.

Kept apart from :mod:`otdpi.cli` so that the main command imports hypothesis
only when fuzzing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

DEFAULT_DB = "otdpi-fuzz.sqlite"


def add_fuzz_commands(commands) -> None:
    """Add the ``fuzz`` group to the main parser's subcommands."""
    fuzz = commands.add_parser(
        "fuzz",
        help="fuzz a live protocol implementation with the dissectors' definitions",
        description="Generate valid and mutated messages from a protocol's "
        "definitions, "
        "drive them at a target and judge every reply with otdpi's own dissector.",
    )
    sub = fuzz.add_subparsers(dest="fuzz_command", metavar="FUZZ_COMMAND")

    run = sub.add_parser("run", help="run a campaign against a target")
    run.add_argument("protocol", help="fuzz profile name (see `otdpi fuzz profiles`)")
    run.add_argument("--target", required=True, metavar="HOST:PORT")
    how = run.add_mutually_exclusive_group()
    how.add_argument(
        "--start",
        metavar="CMD",
        help="command serving --target, started and restarted by the "
        "harness (loopback only; {port} is replaced by the port)",
    )
    how.add_argument(
        "--recipe",
        metavar="NAME",
        help="a ready-made local server, e.g. pymodbus==3.10.0, libmodbus, "
        "hl7-mllp, secsgem, pynetdicom, snap7, opendnp3 (see `otdpi fuzz recipes`)",
    )
    run.add_argument(
        "--differential",
        metavar="HOST:PORT",
        help="a second target given the same cases; differences are findings",
    )
    run.add_argument(
        "--differential-recipe", metavar="NAME", help="recipe serving --differential"
    )
    run.add_argument("--max-cases", type=int, default=1000, metavar="N")
    run.add_argument("--max-time", type=float, default=60.0, metavar="SECONDS")
    run.add_argument(
        "--concurrency",
        type=int,
        default=32,
        metavar="N",
        help="cases in flight at once (default 32; recipes may cap it)",
    )
    run.add_argument(
        "--max-waiting",
        type=int,
        default=256,
        metavar="N",
        help="cases that may wait for an overdue reply outside the --concurrency "
        "slots (default 256; 0: a waiting case holds its slot)",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--reuse-connection",
        action="store_true",
        help="keep a connection per worker instead of one per case",
    )
    run.add_argument(
        "--post-time",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="time for shrinking and replay checks of new findings",
    )
    run.add_argument(
        "--reply-timeout",
        type=float,
        metavar="SECONDS",
        help="how long an owed reply may take (default: the profile's)",
    )
    run.add_argument(
        "--valid-share",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="share of cases sent unmutated (default 0.25; 1 for valid only)",
    )
    run.add_argument(
        "--mutations",
        default="",
        metavar="LIST",
        help="comma-separated mutations to use (default: all the profile's)",
    )
    run.add_argument(
        "--oracles-off",
        default="",
        metavar="LIST",
        help="comma-separated oracles to ignore",
    )
    run.add_argument(
        "--db",
        default=DEFAULT_DB,
        metavar="FILE",
        help=f"findings database (default {DEFAULT_DB})",
    )
    run.add_argument("--no-progress", action="store_true", help="no live display")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(run=_run_campaign)

    rep = sub.add_parser("replay", help="replay a stored finding")
    rep.add_argument("finding", type=int, metavar="FINDING", help="finding id")
    rep.add_argument("--runs", type=int, default=10)
    rep.add_argument(
        "--target", metavar="HOST:PORT", help="another address to replay at"
    )
    rep.add_argument("--start", metavar="CMD", help="another command serving it")
    rep.add_argument(
        "--differential",
        metavar="HOST:PORT",
        help="another address for the second target of a differential finding",
    )
    rep.add_argument("--db", default=DEFAULT_DB, metavar="FILE")
    rep.set_defaults(run=_run_replay)

    lst = sub.add_parser("findings", help="list stored findings")
    lst.add_argument("--db", default=DEFAULT_DB, metavar="FILE")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=_run_findings)

    rec = sub.add_parser("recipes", help="list ready-made local targets")
    rec.set_defaults(run=_run_recipes)
    prof = sub.add_parser("profiles", help="list fuzz profiles")
    prof.set_defaults(run=_run_profiles)
    fuzz.set_defaults(run=lambda args: (fuzz.print_help(sys.stderr), 2)[1])


def _target(address: str, start: str | None, recipe_name: str | None):
    from otdpi.fuzzing.recipes import recipe
    from otdpi.fuzzing.targets import Target, parse_address

    if recipe_name:
        return recipe(recipe_name, parse_address(address)[1])
    return Target(address, start)


def _run_campaign(args: argparse.Namespace) -> int:
    from otdpi.errors import UsageError

    try:
        import hypothesis  # noqa: F401
    except ImportError as exc:
        raise UsageError("fuzzing needs hypothesis: pip install 'otdpi[fuzz]' "
                         "(from a checkout: pip install -e '.[fuzz]')") from exc
    from otdpi.fuzzing.campaign import Campaign, Settings
    from otdpi.fuzzing.findings import FindingStore
    from otdpi.fuzzing.profile import get_profile

    profile = get_profile(args.protocol)
    target = _target(args.target, args.start, args.recipe)
    other = None
    if args.differential:
        other = _target(args.differential, None, args.differential_recipe)
    settings = Settings(
        max_cases=args.max_cases, max_time=args.max_time, concurrency=args.concurrency,
        seed=args.seed, reuse_connection=args.reuse_connection,
        max_waiting=args.max_waiting,
        post_time=args.post_time,
        oracles_off=tuple(o for o in args.oracles_off.split(",") if o),
        reply_timeout=args.reply_timeout, valid_share=args.valid_share,
        mutations=tuple(m for m in args.mutations.split(",") if m),
    )  # fmt: skip
    store = FindingStore(args.db)
    campaign = Campaign(profile, target, store, settings, other)
    try:
        if args.no_progress:
            stats = campaign.run()
        else:
            stats = _run_with_display(campaign)
    finally:
        target.stop()
        if other is not None:
            other.stop()
    findings = store.all(campaign.campaign_id)
    summary = {
        "campaign": campaign.campaign_id,
        "protocol": profile.name,
        "target": target.name,
        "cases": stats.cases,
        "seconds": round(stats.elapsed(), 2),
        "cases_per_second": round(stats.rate, 1),
        "states": dict(stats.states),
        "restarts": stats.restarts,
        "harness_cpu_seconds": round(stats.harness_cpu, 2),
        "target_cpu_seconds": None
        if stats.target_cpu is None
        else round(stats.target_cpu, 2),
        "hits_by_oracle": dict(stats.findings),
        "first_case_by_oracle": stats.first_case,
        "cases_by_mutation": dict(stats.mutations),
        "new_findings": [
            _finding_json(f, campaign.shrinks.get(f.id))
            for f in findings if f.status != "unconfirmed"
        ],
        "unconfirmed": [
            _finding_json(f) for f in findings if f.status == "unconfirmed"
        ],
    }
    store.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary, args.db)
    return 0


def _run_with_display(campaign):
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(stderr=True)

    def render(stats):
        table = Table(
            title=f"otdpi fuzz {campaign.profile.name} -> {campaign.target.name}"
        )
        table.add_column("phase")
        table.add_column("cases", justify="right")
        table.add_column("cases/s", justify="right")
        table.add_column("findings (new)", justify="right")
        table.add_column("by oracle")
        table.add_column("restarts", justify="right")
        by_oracle = ", ".join(f"{k} {v}" for k, v in sorted(stats.findings.items()))
        table.add_row(
            stats.phase, str(stats.cases), f"{stats.rate:.0f}",
            str(stats.new_findings), by_oracle or "-", str(stats.restarts),
        )  # fmt: skip
        return table

    with Live(render(campaign.stats), console=console, refresh_per_second=4) as live:
        return campaign.run(on_tick=lambda stats: live.update(render(stats)))


def _finding_json(finding, shrink=None) -> dict:
    out = {
        "id": finding.id,
        "oracle": finding.oracle,
        "signature": finding.signature,
        "detail": finding.detail,
        "hits": finding.hits,
        "reproducer": finding.reproducer.payload.hex(),
        "replayed": f"{finding.replay_hits}/{finding.replay_runs}",
        "status": finding.status,
    }
    if shrink is not None:
        out["shrink"] = {
            "from_bytes": len(finding.case.payload),
            "to_bytes": len(shrink.case.payload),
            "kept": shrink.case != finding.case and finding.shrunk is not None,
            "attempts": shrink.attempts,
            "by_pass": shrink.by_pass,
            "seconds": round(shrink.seconds, 2),
        }
    return out


def _print_summary(summary: dict, db: str) -> None:
    print(
        f"campaign {summary['campaign']}: {summary['cases']} cases in "
        f"{summary['seconds']} s ({summary['cases_per_second']} cases/s) against "
        f"{summary['target']}; states {summary['states']}"
    )
    if summary["first_case_by_oracle"]:
        print(
            "  first hit (case number): "
            + ", ".join(f"{k} {v}" for k, v in summary["first_case_by_oracle"].items())
        )
    print(
        f"  CPU: harness {summary['harness_cpu_seconds']} s, target "
        f"{summary['target_cpu_seconds']} s"
    )
    for f in summary["new_findings"]:
        print(
            f"  #{f['id']} {f['oracle']} [{f['signature']}] hits {f['hits']}, "
            f"replayed {f['replayed']} ({f['status']}): {f['reproducer'][:80]}"
        )
        print(f"      {f['detail'][:150]}")
        if "shrink" in f:
            k = f["shrink"]
            print(
                f"      shrunk {k['from_bytes']} -> {k['to_bytes']} B in "
                f"{k['attempts']} replays ({k['by_pass']}), {k['seconds']} s"
            )
    if summary["unconfirmed"]:
        print(
            f"  ({len(summary['unconfirmed'])} more did not replay in 9 of 10 runs: "
            + ", ".join(f"#{f['id']} {f['oracle']}" for f in summary["unconfirmed"])
            + ")"
        )
    if summary["new_findings"]:
        print(f"replay one with: otdpi fuzz replay N --db {db}  (N: a #number above)")


def _run_replay(args: argparse.Namespace) -> int:
    from otdpi.errors import UsageError
    from otdpi.fuzzing.campaign import other_target_of, replay_finding
    from otdpi.fuzzing.findings import FindingStore
    from otdpi.fuzzing.profile import get_profile
    from otdpi.fuzzing.targets import Target

    if not os.path.exists(args.db):
        raise UsageError(f"{args.db}: no findings database (give the campaign's --db)")
    store = FindingStore(args.db)
    finding = store.get(args.finding)
    store.close()
    if finding is None:
        raise UsageError(f"no finding {args.finding} in {args.db}")
    command = args.start or finding.target_command or None
    target = Target(
        args.target or finding.target_address, command, name=finding.target_name,
        max_concurrency=finding.max_concurrency, env=finding.target_env or None,
    )  # fmt: skip
    profile = get_profile(finding.protocol)
    # Judge the replay by the yardstick of the campaign that found it.
    if finding.outcome.get("reply_timeout"):
        profile.reply_timeout = finding.outcome["reply_timeout"]
    other = None
    if finding.oracle == "differential":
        # Both targets get every case again; the finding names the second.
        other = other_target_of(finding)
        if other is None and not args.differential:
            raise UsageError(
                f"finding {finding.id} does not say which second target it was "
                "found against; give --differential HOST:PORT"
            )
        if args.differential:
            other = Target(args.differential, name=other.name if other else None)
    with contextlib.ExitStack() as running:
        running.enter_context(target)
        if other is not None:
            running.enter_context(other)
        results = replay_finding(finding, profile, target, args.runs, other)
    hits = sum(results)
    against = target.name + (f" and {other.name}" if other is not None else "")
    print(
        f"finding {finding.id} {finding.oracle} [{finding.signature}] against "
        f"{against}: reproduced {hits}/{len(results)}"
    )
    print(f"  bytes: {finding.reproducer.payload.hex()}")
    return 0 if hits else 1


def _run_findings(args: argparse.Namespace) -> int:
    from otdpi.fuzzing.findings import FindingStore

    store = FindingStore(args.db)
    findings = store.all()
    store.close()
    if args.json:
        print(json.dumps([_finding_json(f) for f in findings], indent=2))
        return 0
    for f in findings:
        print(
            f"#{f.id} {f.protocol} {f.target_name} {f.oracle} [{f.signature}] "
            f"hits {f.hits} replayed {f.replay_hits}/{f.replay_runs} {f.status}"
        )
    return 0


def _run_recipes(args: argparse.Namespace) -> int:
    from otdpi.fuzzing.recipes import RECIPES

    for name, text in RECIPES.items():
        print(f"{name:12s} {text}")
    return 0


def _run_profiles(args: argparse.Namespace) -> int:
    from otdpi.fuzzing.profile import available_profiles

    for name in available_profiles():
        print(name)
    return 0
