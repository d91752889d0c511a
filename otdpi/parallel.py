"""Runs the inventory over many captures, or one capture split by flow hash, in parallel.

The unit of work is a :class:`Task`: one capture file, and optionally one share
of its flows (``shard=(index, count)``; every worker then reads the whole file
and dissects only its share, see :class:`~otdpi.flows.FlowTable`). A task
returns a :class:`Partial` (an inventory, counters and capture problems), and
partials merge with the same :meth:`~otdpi.inventory.Inventory.merge` a single
process would use, so the result does not depend on how the work was cut.

Learning (:func:`learn_in_parallel`) cuts by whole files only: a baseline's
cadence statistics follow each relationship's messages in time order, which a
split by flow would tear apart, while baselines of separate captures merge
exactly into the one a single run over them learns.

Two executors run the same task functions: a local process pool
(:class:`concurrent.futures.ProcessPoolExecutor`) and, for a cluster, Dask
distributed (an optional dependency, ``pip install "otdpi[dask]"``). There is
no scheduling code of our own beyond cutting the work into tasks.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from otdpi.capture import CaptureProblem
from otdpi.errors import UsageError
from otdpi.flows import FlowConfig
from otdpi.inventory import Inventory

# Counters that every share of a split file counts in full (they describe the
# records read, not the flows dissected): merged from the first share only.
PER_RECORD_COUNTERS = frozenset({
    "packets", "files", "capture_problems", "truncated", "unknown_linktype",
    "decode_error", "not_ip", "bad_ip_header", "bad_tcp_header", "ip_cut_by_snaplen",
    "ipv6_ext_headers", "ipv6_fragments", "ip_fragments", "ip_reassembled",
    "fragment_overlaps", "fragment_sets_evicted", "fragment_sets_expired",
    "bad_fragment",
})


@dataclass(frozen=True)
class Task:
    """One capture, or one share of one capture's flows."""

    path: str
    shard: tuple[int, int] | None = None
    protocols: tuple[str, ...] | None = None
    flow_config: FlowConfig | None = None


@dataclass
class Partial:
    """What one task found; partials merge into the result of the whole run."""

    inventory: Inventory
    counters: Counter = field(default_factory=Counter)
    problems: list[CaptureProblem] = field(default_factory=list)

    def merge(self, other: Partial, *, same_file: bool = False) -> Partial:
        """Fold ``other`` in; ``same_file`` when both are shares of one capture."""
        self.inventory.merge(other.inventory)
        for key, value in other.counters.items():
            if not (same_file and key in PER_RECORD_COUNTERS):
                self.counters[key] += value
        if not same_file:
            self.problems.extend(other.problems)
        return self


def run_task(task: Task) -> Partial:
    """Build the partial inventory of one task (runs in a worker process)."""
    from otdpi.engine import Engine

    engine = Engine(task.protocols, flow_config=task.flow_config, shard=task.shard)
    inventory = Inventory()
    inventory.update(engine.messages(task.path), capture=task.path)
    inventory.settle()
    return Partial(inventory, Counter(engine.counters), list(engine.problems))


@dataclass
class LearnedPartial:
    """The baseline one capture taught, with the counters of reading it."""

    baseline: object  # an otdpi.learner.Baseline
    counters: Counter = field(default_factory=Counter)
    problems: list[CaptureProblem] = field(default_factory=list)
    observations: object = None  # an otdpi.report.Observations, for the store


def run_learn_task(task: Task) -> LearnedPartial:
    """Learn the baseline of one capture (runs in a worker process)."""
    from otdpi.engine import Engine
    from otdpi.learner import Detector, feed_captures

    from otdpi.report import Observations

    detector = Detector(learn_for=float("inf"))
    engine = Engine(task.protocols, flow_config=task.flow_config)
    observations = Observations()
    feed_captures(detector, [task.path], engine=engine, on_message=observations.add)
    observations.inventory.settle()
    observations.counters.update(engine.counters)
    observations.sources.append(task.path)
    return LearnedPartial(detector.baseline, Counter(engine.counters),
                          list(engine.problems), observations)


def learn_in_parallel(
    paths: Sequence[str | os.PathLike],
    jobs: int = 2,
    *,
    protocols: Iterable[str] | None = None,
    flow_config: FlowConfig | None = None,
    dask_address: str | None = None,
) -> LearnedPartial:
    """The baseline of ``paths``, one file per task, merged in the order given.

    Parameters are those of :func:`inventory_in_parallel`; a capture is never
    split, so more workers than files leaves some idle.
    """
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    names = tuple(protocols) if protocols else None
    tasks = [Task(os.fspath(p), None, names, flow_config) for p in paths]
    if dask_address is not None:
        partials = _run_on_dask(dask_address, tasks, run_learn_task)
    elif jobs == 1:
        partials = [run_learn_task(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            partials = list(pool.map(run_learn_task, tasks))
    from otdpi.learner import Baseline
    from otdpi.report import Observations

    total = LearnedPartial(Baseline(), observations=Observations())
    for partial in partials:
        total.baseline.merge(partial.baseline)
        total.counters.update(partial.counters)
        total.problems.extend(partial.problems)
        total.observations.merge(partial.observations)
    return total


def plan(paths: Sequence[str | os.PathLike], jobs: int,
         protocols: Iterable[str] | None = None,
         flow_config: FlowConfig | None = None) -> list[Task]:
    """Cut the work into tasks: a file each, or shares of files when files are few.

    With fewer files than workers, each file is split into ``jobs`` shares so
    that every worker has work; with at least as many files, whole files keep
    each worker from re-reading what another reads.
    """
    names = tuple(protocols) if protocols else None
    paths = [os.fspath(p) for p in paths]
    if len(paths) >= jobs or jobs == 1:
        return [Task(p, None, names, flow_config) for p in paths]
    return [Task(p, (index, jobs), names, flow_config)
            for p in paths for index in range(jobs)]


def combine(tasks: Sequence[Task], partials: Sequence[Partial]) -> Partial:
    """Merge the partials of ``tasks`` (in the same order) into one."""
    total = Partial(Inventory())
    seen_files: set[str] = set()
    for task, partial in zip(tasks, partials):
        total.merge(partial, same_file=task.path in seen_files)
        seen_files.add(task.path)
    return total


def inventory_in_parallel(
    paths: Sequence[str | os.PathLike],
    jobs: int = 2,
    *,
    protocols: Iterable[str] | None = None,
    flow_config: FlowConfig | None = None,
    dask_address: str | None = None,
) -> Partial:
    """The inventory of ``paths``, built by ``jobs`` local processes or a Dask cluster.

    Parameters
    ----------
    paths
        capture files; every worker must be able to open them by these paths.
    jobs
        local worker processes, and the number of shares a lone file is cut
        into; with ``dask_address``, the number of shares per file.
    dask_address
        the scheduler of an existing Dask distributed cluster
        (``tcp://host:8786``); None runs a local process pool.

    Raises
    ------
    UsageError
        Dask is asked for but not installed, or ``jobs`` is below 1.
    """
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    tasks = plan(paths, jobs, protocols, flow_config)
    if dask_address is not None:
        partials = _run_on_dask(dask_address, tasks, run_task)
    elif jobs == 1:
        partials = [run_task(task) for task in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            partials = list(pool.map(run_task, tasks))
    return combine(tasks, partials)


def _run_on_dask(address: str, tasks: Sequence[Task], function) -> list:
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(
            "--dask needs Dask distributed: pip install \"otdpi[dask]\""
        ) from None
    with Client(address) as client:
        futures = client.map(function, tasks, pure=False)
        return client.gather(futures)
