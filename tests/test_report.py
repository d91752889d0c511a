"""The HTML report: built from a capture, opened in headless Chromium, filtered, escaped."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from otdpi.cli import main
from otdpi.report import render

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "fixtures" / "modbus_pymodbus.pcap"
ARTIFACTS = Path(os.environ.get("OTDPI_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")


def _asset(key: str, ip: str, role: str, **summary) -> dict:
    return {"key": key, "ips": [ip], "macs": [], "mac_vendor": None, "role": role,
            "protocols": {"modbus": {"roles": ["server"], "messages": 1}},
            "peers": [], "summary": summary, "messages_sent": 1}


def test_strings_from_the_wire_are_escaped():
    hostile = _asset("ip:10.0.0.9", "10.0.0.9", "field device",
                     vendor="<script>alert(1)</script>", model="<img src=x onerror=y>")
    alert = {"ts": 5.0, "score": 90, "model": "ot/new-peer",
             "explanation": "<b>bold</b> claim", "device": "10.0.0.9"}
    html = render([hostile], alerts=[alert])
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html


def _report(tmp_path: Path) -> Path:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps({
        "ts": 1796334364.5, "score": 70, "model": "ot/first-write",
        "device": "127.0.0.2", "techniques": [{"id": "T0836", "name": "Modify Parameter"}],
        "explanation": "127.0.0.3 wrote holding registers 0-9 on 127.0.0.2 for the first time",
    }) + "\n")
    output = tmp_path / "report.html"
    assert main(["report", str(FIXTURE), "-o", str(output), "--alerts", str(alerts)]) == 0
    return output


def test_the_report_is_one_file_that_needs_nothing_from_outside(tmp_path, capsys):
    html = _report(tmp_path).read_text()
    capsys.readouterr()
    assert "<svg" in html and "127.0.0.2" in html and "T0836" in html
    for outside in ("http://", "https://", "src=\"//"):
        # Only the SVG namespace and the asset's own vendor URL may name a web address.
        for line in html.splitlines():
            if outside in line:
                assert "w3.org" in line or "example.invalid" in line, line


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_headless_chromium_shows_filters_and_draws_the_report(tmp_path, capsys):
    sync_api = pytest.importorskip("playwright.sync_api")
    output = _report(tmp_path)
    capsys.readouterr()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(output.as_uri())
            rows = page.locator("#assets tbody tr")
            assert rows.count() == 2
            assert "127.0.0.2" in page.locator("#assets").inner_text()

            page.fill("#search", "otdpi test bench")
            visible = [r for r in rows.all() if r.is_visible()]
            assert len(visible) == 1 and "127.0.0.2" in visible[0].inner_text()
            page.fill("#search", "")
            page.fill("tr.filters input[data-column='2']", "master")
            visible = [r for r in rows.all() if r.is_visible()]
            assert len(visible) == 1 and "127.0.0.3" in visible[0].inner_text()
            page.fill("tr.filters input[data-column='2']", "")

            page.click("#assets th[data-column='ip']")
            first = rows.nth(0).inner_text()
            page.click("#assets th[data-column='ip']")
            assert rows.nth(0).inner_text() != first

            map_box = page.locator("#map svg").bounding_box()
            assert map_box and map_box["width"] > 300 and map_box["height"] > 100
            assert page.locator("#map svg path").count() > 3
            assert page.locator("#alerts tbody tr").count() == 1
            assert not errors, errors
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_the_report_shows_the_alerts_of_a_learner_store(tmp_path, capsys):
    scenario = REPO / "fixtures" / "learner_scenario.pcap"
    store = tmp_path / "s.sqlite"
    assert main(["watch", str(scenario), "--learn-for", "150s", "--db", str(store),
                 "-o", str(tmp_path / "alerts.jsonl")]) == 0
    output = tmp_path / "r.html"
    assert main(["report", str(scenario), "--db", str(store), "-o", str(output)]) == 0
    capsys.readouterr()
    html = output.read_text()
    assert "ot/first-write" in html and "it/tls-self-signed" in html and "T0836" in html


def _inventory_of(*paths):
    from otdpi.engine import Engine
    from otdpi.inventory import Inventory

    inventory = Inventory()
    for path in paths:
        inventory.update(Engine().messages(path), capture=os.fspath(path))
    return inventory


def test_an_inventory_written_as_json_and_read_back_merges_as_before():
    from otdpi.inventory import Inventory

    first = REPO / "fixtures" / "modbus_pymodbus.pcap"
    second = REPO / "fixtures" / "learner_scenario.pcap"
    document = json.loads(json.dumps(_inventory_of(first).to_json()))
    restored = Inventory.from_json(document)
    assert restored.assets() == _inventory_of(first).assets()
    restored.merge(_inventory_of(second))
    assert restored.assets() == _inventory_of(first, second).assets()


def test_the_report_is_drawn_from_a_store_alone(tmp_path, capsys):
    from otdpi.learner import Store

    benign = REPO / "fixtures" / "modbus_pymodbus.pcap"
    scenario = REPO / "fixtures" / "learner_scenario.pcap"
    store = tmp_path / "site.sqlite"
    assert main(["learn", str(benign), "--db", str(store)]) == 0
    assert main(["watch", str(scenario), "--learn-for", "150s", "--db", str(store),
                 "-o", str(tmp_path / "alerts.jsonl")]) == 0
    from_store = tmp_path / "from-store.html"
    assert main(["report", str(store), "-o", str(from_store)]) == 0
    from_captures = tmp_path / "from-captures.html"
    assert main(["report", str(benign), str(scenario), "--db", str(store),
                 "-o", str(from_captures)]) == 0
    capsys.readouterr()

    with Store(store) as kept:
        from otdpi.report import Observations

        observations = Observations.from_json(kept.inventory())
        alerts = kept.alerts()
    # The store's inventory is the one both captures give, read in one run.
    assert observations.inventory.assets() == _inventory_of(benign, scenario).assets()
    assert observations.statistics.messages["modbus"] > 0
    assert observations.counters["packets"] > 0

    html = from_store.read_text()
    for asset in observations.inventory.assets():
        assert asset["key"] in html
    assert "ot/first-write" in html and "it/tls-self-signed" in html
    assert html.count("<tr") == from_captures.read_text().count("<tr")
    assert len(alerts) > 0


def test_a_store_without_an_inventory_is_one_clear_error(tmp_path, capsys):
    from otdpi.learner import Baseline, Store

    store = tmp_path / "old.sqlite"
    with Store(store) as old:
        old.save(Baseline())
    assert main(["report", str(store), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keeps no inventory" in err[0]


def test_learn_with_two_jobs_keeps_the_same_inventory_as_one(tmp_path, capsys):
    from otdpi.learner import Store
    from otdpi.report import Observations

    captures = [str(REPO / "fixtures" / name)
                for name in ("modbus_pymodbus.pcap", "learner_scenario.pcap")]
    kept = {}
    for jobs in ("1", "2"):
        store = tmp_path / f"jobs{jobs}.sqlite"
        assert main(["learn", *captures, "--db", str(store), "--jobs", jobs]) == 0
        with Store(store) as saved:
            kept[jobs] = Observations.from_json(saved.inventory())
    capsys.readouterr()
    assert kept["1"].inventory.assets() == kept["2"].inventory.assets()
    assert kept["1"].statistics.to_json() == kept["2"].statistics.to_json()
    assert kept["1"].counters == kept["2"].counters


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path, capsys):
    import sqlite3

    foreign = tmp_path / "other.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    before = foreign.read_bytes()
    for argv in (["report", str(foreign)], ["report", str(FIXTURE), "--db", str(foreign)]):
        assert main([*argv, "-o", str(tmp_path / "r.html")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not an otdpi store" in err[0], err
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]
