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
