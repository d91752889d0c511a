"""Parallel inventories (process pool, flow-hash shares, Dask) equal the one-process result."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import otdpi
from otdpi.cli import main
from otdpi.flows import FlowTable
from otdpi.parallel import Task, inventory_in_parallel, plan
from otdpi.registry import Selector
from tests.helpers import SHARED_CAPTURES

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "modbus_pymodbus.pcap"


def _captures() -> list[Path]:
    """The fixture, and the larger public Modbus captures where they are present."""
    found = [FIXTURE]
    for name in ("iti_modbus_test_2.pcap", "zeek_modbusSmall.pcap", "iti_modbus_test.pcap"):
        path = SHARED_CAPTURES / "modbus" / name
        if path.exists():
            found.append(path)
    return found


def _single(paths) -> tuple[list[dict], Counter]:
    from otdpi.engine import Engine
    from otdpi.inventory import Inventory

    engine = Engine()
    inventory = Inventory()
    for path in paths:
        inventory.update(engine.messages(path), capture=str(path))
    return inventory.assets(), engine.counters


def test_plan_splits_lone_files_and_keeps_many_files_whole():
    assert [t.shard for t in plan(["a.pcap"], 3)] == [(0, 3), (1, 3), (2, 3)]
    assert [t.shard for t in plan(["a", "b", "c"], 2)] == [None, None, None]
    assert plan(["a"], 1) == [Task("a")]


def test_shares_of_the_flows_are_disjoint_and_cover_every_flow():
    from otdpi.engine import Engine

    path = _captures()[-1]
    whole = Counter(m.flow for m in Engine().messages(path))
    per_share = []
    for index in range(3):
        messages = list(Engine(shard=(index, 3)).messages(path))
        per_share.append({(m.frame, m.service, m.kind) for m in messages})
    everything = {(m.frame, m.service, m.kind) for m in Engine().messages(path)}
    assert set.union(*per_share) == everything
    assert sum(len(s) for s in per_share) == len(everything)
    assert len(whole) >= 2


def test_a_share_that_does_not_exist_is_refused():
    with pytest.raises(ValueError):
        FlowTable(Selector(), shard=(2, 2))


@pytest.mark.parametrize("which", ["one file in shares", "several files"])
def test_jobs_2_equals_one_process(which):
    paths = _captures()[-1:] if which == "one file in shares" else _captures()
    assets, counters = _single(paths)
    result = inventory_in_parallel(paths, jobs=2)
    assert result.inventory.assets() == assets
    for key in ("packets", "messages", "messages_malformed", "files", "flows"):
        assert result.counters[key] == counters[key], key


def test_cli_jobs_writes_the_same_json(tmp_path, capsys):
    single, parallel = tmp_path / "one.json", tmp_path / "two.json"
    assert main(["inventory", str(FIXTURE), "-o", str(single)]) == 0
    assert main(["inventory", str(FIXTURE), "--jobs", "2", "-o", str(parallel)]) == 0
    capsys.readouterr()
    one, two = json.loads(single.read_text()), json.loads(parallel.read_text())
    assert one["assets"] == two["assets"]
    assert one["counters"]["messages"] == two["counters"]["messages"]


@pytest.mark.slow
def test_a_local_dask_cluster_of_two_workers_equals_one_process():
    distributed = pytest.importorskip("distributed")
    paths = _captures()
    assets, counters = _single(paths)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = inventory_in_parallel(paths, jobs=2, dask_address=cluster.scheduler_address)
    assert result.inventory.assets() == assets
    assert result.counters["messages"] == counters["messages"]
    assert otdpi.__version__  # the workers imported the same package


def _learned_alone(paths) -> dict:
    from otdpi.learner import learn

    return learn(paths).to_json()


def test_learn_jobs_2_equals_one_process():
    from otdpi.parallel import learn_in_parallel

    paths = _captures()
    result = learn_in_parallel(paths, jobs=2)
    assert result.baseline.to_json() == _learned_alone(paths)
    assert result.counters["messages"] > 0


@pytest.mark.slow
def test_learning_on_a_local_dask_cluster_equals_one_process():
    distributed = pytest.importorskip("distributed")
    from otdpi.parallel import learn_in_parallel

    paths = _captures()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = learn_in_parallel(paths, jobs=2, dask_address=cluster.scheduler_address)
    assert result.baseline.to_json() == _learned_alone(paths)


def test_cli_learn_with_jobs_saves_the_same_baseline(tmp_path, capsys):
    from otdpi.learner import Store

    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    paths = [str(p) for p in _captures()]
    assert main(["learn", *paths, "--db", str(one)]) == 0
    assert main(["learn", *paths, "--db", str(two), "--jobs", "2"]) == 0
    capsys.readouterr()
    with Store(one) as first, Store(two) as second:
        assert first.load().to_json() == second.load().to_json()
