"""Writes the HTML report a person reads: assets, a communication map, statistics, alerts.

One self-contained file that opens offline: styles, the table's sorting and
filtering script and the pictures (inline SVG drawn with matplotlib) are all
inside it, and nothing is fetched. Every string that came off the wire is
escaped by Jinja2's autoescaping before it reaches the page, since device
names and identity strings are attacker-controlled input.

The communication map places devices in columns by role and, within a column,
groups them by /24 (IPv4) or /64 (IPv6) subnet; an edge joins two devices that
exchanged messages, coloured by protocol.
"""

# Limitation: the map draws at most MAX_MAP_NODES devices (the busiest ones);
# beyond that a picture stops being readable. The table still lists every asset.

from __future__ import annotations

import io
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from otdpi.errors import UsageError
from otdpi.inventory import headline
from otdpi.message import Message

MAX_MAP_NODES = 120

# Columns of the map, left to right; any other role goes in the last column.
ROLE_COLUMNS = (
    ("engineering station", "HMI", "SCADA", "master", "host", "workstation",
     "HL7 sender"),
    ("PLC", "controller", "RTU", "outstation", "IED", "field device", "gateway",
     "equipment", "modality", "PACS", "HL7 receiver"),
)


class ProtocolStatistics:
    """Per-protocol message counts, by service and by status, gathered while streaming."""

    def __init__(self) -> None:
        self.messages: Counter[str] = Counter()
        self.services: dict[str, Counter[str]] = defaultdict(Counter)
        self.states: dict[str, Counter[str]] = defaultdict(Counter)
        self.first_ts: float | None = None
        self.last_ts: float | None = None

    def add(self, message: Message) -> None:
        protocol = message.protocol
        self.messages[protocol] += 1
        self.services[protocol][f"{message.service} ({message.kind})"] += 1
        self.states[protocol][message.status.state] += 1
        ts = message.ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts

    def merge(self, other: ProtocolStatistics) -> ProtocolStatistics:
        """Fold ``other`` in (counts add, the time span widens); return self."""
        self.messages.update(other.messages)
        for protocol, counts in other.services.items():
            self.services[protocol].update(counts)
        for protocol, counts in other.states.items():
            self.states[protocol].update(counts)
        for ts in (other.first_ts, other.last_ts):
            if ts is not None:
                if self.first_ts is None or ts < self.first_ts:
                    self.first_ts = ts
                if self.last_ts is None or ts > self.last_ts:
                    self.last_ts = ts
        return self

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for a store; :meth:`from_json` reads it back."""
        return {
            "messages": dict(self.messages),
            "services": {p: dict(c) for p, c in self.services.items()},
            "states": {p: dict(c) for p, c in self.states.items()},
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> ProtocolStatistics:
        statistics = cls()
        statistics.messages.update(document.get("messages", {}))
        for protocol, counts in document.get("services", {}).items():
            statistics.services[protocol].update(counts)
        for protocol, counts in document.get("states", {}).items():
            statistics.states[protocol].update(counts)
        statistics.first_ts = document.get("first_ts")
        statistics.last_ts = document.get("last_ts")
        return statistics

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "protocol": protocol,
                "messages": count,
                "malformed": self.states[protocol]["malformed"],
                "exceptions": self.states[protocol]["exception"],
                "services": self.services[protocol].most_common(12),
            }
            for protocol, count in self.messages.most_common()
        ]


class Observations:
    """What a report shows of one or more runs: inventory, statistics, counters, sources.

    Runs that keep a learner store save theirs in it (see
    :meth:`otdpi.learner.Store.save`), so that ``otdpi report STORE`` can be
    drawn later from the store alone; observations merge like the
    inventories they hold.
    """

    def __init__(self) -> None:
        from otdpi.inventory import Inventory

        self.inventory = Inventory()
        self.statistics = ProtocolStatistics()
        self.counters: Counter[str] = Counter()
        self.sources: list[str] = []

    def add(self, message: Message, capture: str | None = None) -> None:
        self.inventory.add(message, capture)
        self.statistics.add(message)

    def merge(self, other: Observations) -> Observations:
        self.inventory.merge(other.inventory)
        self.statistics.merge(other.statistics)
        self.counters.update(other.counters)
        self.sources.extend(s for s in other.sources if s not in self.sources)
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "inventory": self.inventory.to_json(),
            "statistics": self.statistics.to_json(),
            "counters": dict(self.counters),
            "sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Observations:
        from otdpi.inventory import Inventory

        observations = cls()
        observations.inventory = Inventory.from_json(document["inventory"])
        observations.statistics = ProtocolStatistics.from_json(document["statistics"])
        observations.counters.update(document.get("counters", {}))
        observations.sources = list(document.get("sources", []))
        return observations


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise UsageError(
            f"the report needs {module}: pip install \"otdpi[report]\" (from a "
            "checkout: pip install -e \".[report]\")") from None


def _subnet(ip: str | None) -> str:
    if not ip:
        return "layer 2"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "other"
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _column(role: str) -> int:
    for index, roles in enumerate(ROLE_COLUMNS):
        if role in roles:
            return index
    return len(ROLE_COLUMNS)


def communication_map_svg(assets: list[dict[str, Any]]) -> str:
    """The map as SVG text: devices by role and subnet, edges by protocol."""
    _require("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.lines import Line2D

    shown = sorted(assets, key=lambda a: -a["messages_sent"])[:MAX_MAP_NODES]
    # Lay out: columns by role, rows grouped by subnet inside each column.
    columns: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for asset in shown:
        columns[_column(asset["role"])].append(asset)
    position: dict[str, tuple[float, float]] = {}
    owner: dict[str, str] = {}
    subnet_labels: list[tuple[float, float, str]] = []
    tallest = 1
    for column, members in columns.items():
        members.sort(key=lambda a: (_subnet(a["ips"][0] if a["ips"] else None), a["key"]))
        row, previous_subnet = 0.0, None
        for asset in members:
            subnet = _subnet(asset["ips"][0] if asset["ips"] else None)
            if subnet != previous_subnet:
                if previous_subnet is not None:
                    row += 0.6  # a visible gap between subnets
                subnet_labels.append((column * 4.0, -row + 0.45, subnet))
            previous_subnet = subnet
            position[asset["key"]] = (column * 4.0, -row)
            row += 1.0
        tallest = max(tallest, int(row) + 1)
    for asset in assets:
        for ip in asset["ips"]:
            owner[ip] = asset["key"]
        for mac in asset["macs"]:
            owner.setdefault(mac, asset["key"])

    figure, axes = pyplot.subplots(figsize=(12, 0.45 * tallest + 1.0))
    protocols = sorted({p for a in shown for p in a["protocols"]})
    palette = pyplot.get_cmap("tab10")
    colour = {p: palette(i % 10) for i, p in enumerate(protocols)}
    drawn: set[tuple[str, str, str]] = set()
    for asset in shown:
        for peer in asset["peers"]:
            other = owner.get(peer["ip"])
            if other is None or other not in position or other == asset["key"]:
                continue
            edge = tuple(sorted((asset["key"], other))) + (peer["protocol"],)
            if edge in drawn:
                continue
            drawn.add(edge)
            (x1, y1), (x2, y2) = position[asset["key"]], position[other]
            axes.plot([x1, x2], [y1, y2], color=colour.get(peer["protocol"], "grey"),
                      linewidth=1.2, alpha=0.7, zorder=1)
    for asset in shown:
        x, y = position[asset["key"]]
        axes.scatter([x], [y], s=120, color="#2b6cb0", zorder=2, edgecolors="white")
        label = asset["ips"][0] if asset["ips"] else asset["key"]
        model = headline(asset["summary"], asset.get("identity"))["model"]
        axes.annotate(f"{label}\n{asset['role']}" + (f" · {model}" if model else ""),
                      (x, y), xytext=(8, -4), textcoords="offset points", fontsize=7)
    for x, y, subnet in subnet_labels:
        axes.text(x - 0.3, y, subnet, fontsize=6, color="#718096")
    for column in columns:
        title = (" / ".join(ROLE_COLUMNS[column][:3]) + "…" if column < len(ROLE_COLUMNS)
                 else "other roles")
        axes.text(column * 4.0, 0.9, title, fontsize=8, weight="bold")
    axes.legend(handles=[Line2D([0], [0], color=colour[p], label=p) for p in protocols],
                loc="lower right", fontsize=7, frameon=False)
    axes.set_axis_off()
    axes.set_xlim(-1, max(columns, default=0) * 4.0 + 3.5)
    axes.set_ylim(-tallest, 1.3)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    pyplot.close(figure)
    return _svg_body(buffer.getvalue())


def alert_timeline_svg(alerts: list[dict[str, Any]]) -> str | None:
    """Alerts as points in time against their score, one colour per model."""
    if not alerts:
        return None
    _require("matplotlib")
    import datetime

    import matplotlib
    import matplotlib.dates

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(12, 2.8))
    models = sorted({a.get("model", "?") for a in alerts})
    palette = pyplot.get_cmap("tab10")
    for index, model in enumerate(models):
        chosen = [a for a in alerts if a.get("model", "?") == model]
        times = [datetime.datetime.fromtimestamp(a["ts"], datetime.timezone.utc)
                 for a in chosen]
        axes.scatter(times, [a.get("score", 0) for a in chosen], label=model,
                     color=palette(index % 10), s=30)
    axes.set_ylabel("score")
    axes.set_ylim(0, 105)
    # Pad the time axis so a lone alert, or a burst, is not stretched over years.
    earliest = min(a["ts"] for a in alerts)
    latest = max(a["ts"] for a in alerts)
    pad = max(60.0, (latest - earliest) * 0.05)
    axes.set_xlim(datetime.datetime.fromtimestamp(earliest - pad, datetime.timezone.utc),
                  datetime.datetime.fromtimestamp(latest + pad, datetime.timezone.utc))
    axes.xaxis.set_major_formatter(matplotlib.dates.AutoDateFormatter(
        axes.xaxis.get_major_locator()))
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    pyplot.close(figure)
    return _svg_body(buffer.getvalue())


def _svg_body(svg: str) -> str:
    # Drop the XML prolog and doctype so the SVG can sit inside HTML, and the
    # RDF metadata block, whose vocabulary URLs only look like references.
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    return re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.DOTALL)


def render(
    assets: list[dict[str, Any]],
    statistics: ProtocolStatistics | None = None,
    alerts: Iterable[dict[str, Any]] = (),
    *,
    title: str = "otdpi report",
    sources: Iterable[str] = (),
    counters: dict[str, int] | None = None,
) -> str:
    """The whole report as one HTML document."""
    _require("jinja2")
    import jinja2

    from otdpi import __version__

    import datetime

    alerts = sorted(alerts, key=lambda a: a.get("ts", 0))
    for alert in alerts:
        if "time" not in alert and isinstance(alert.get("ts"), (int, float)):
            alert["time"] = datetime.datetime.fromtimestamp(
                alert["ts"], datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_TEMPLATE)
    rows = []
    for asset in assets:
        facts = headline(asset["summary"], asset.get("identity"))
        rows.append({
            "key": asset["key"],
            "ip": ", ".join(asset["ips"]),
            "mac_vendor": asset.get("mac_vendor") or "",
            "role": asset["role"],
            "vendor": facts["vendor"],
            "model": facts["model"],
            "firmware": facts["firmware"],
            "protocols": ", ".join(f"{p} ({'/'.join(i['roles'])})"
                                   for p, i in asset["protocols"].items()),
            "peers": len({p["ip"] for p in asset["peers"]}),
            "messages": asset["messages_sent"],
        })
    return template.render(
        title=title,
        version=__version__,
        sources=list(sources),
        rows=rows,
        counters=counters or {},
        statistics=statistics.rows() if statistics else [],
        map_svg=jinja2.utils.markupsafe.Markup(communication_map_svg(assets)),
        timeline_svg=(jinja2.utils.markupsafe.Markup(svg)
                      if (svg := alert_timeline_svg(alerts)) else None),
        alerts=alerts,
    )


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1a202c; }
 h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
 table { border-collapse: collapse; width: 100%; }
 th, td { border-bottom: 1px solid #e2e8f0; padding: 4px 8px; text-align: left;
          vertical-align: top; }
 th { background: #edf2f7; cursor: pointer; user-select: none; white-space: nowrap; }
 th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
 input.filter { width: 100%; box-sizing: border-box; font-size: 12px; }
 .meta { color: #4a5568; } .score { font-weight: bold; }
 figure { margin: 0; overflow-x: auto; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p class="meta">otdpi {{ version }} · {{ rows|length }} assets
{%- if sources %} · from {{ sources|join(", ") }}{% endif %}
{%- if counters.get("packets") %} · {{ counters["packets"] }} packets,
{{ counters.get("messages", 0) }} messages{% endif %}</p>

<h2>Assets</h2>
<p><input id="search" class="filter" placeholder="filter every column" aria-label="filter"></p>
<table id="assets">
<thead><tr>
{% for column in ["key", "ip", "role", "vendor", "model", "firmware", "protocols",
                  "mac_vendor", "peers", "messages"] %}
<th data-column="{{ column }}">{{ column.replace("_", " ") }}</th>{% endfor %}
</tr><tr class="filters">
{% for column in ["key", "ip", "role", "vendor", "model", "firmware", "protocols",
                  "mac_vendor", "peers", "messages"] %}
<td><input class="filter" data-column="{{ loop.index0 }}" aria-label="filter {{ column }}"></td>
{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}<tr>
<td>{{ row.key }}</td><td>{{ row.ip }}</td><td>{{ row.role }}</td><td>{{ row.vendor }}</td>
<td>{{ row.model }}</td><td>{{ row.firmware }}</td><td>{{ row.protocols }}</td>
<td>{{ row.mac_vendor }}</td><td data-sort="{{ row.peers }}">{{ row.peers }}</td>
<td data-sort="{{ row.messages }}">{{ row.messages }}</td></tr>
{% endfor %}</tbody></table>

<h2>Communication map</h2>
<figure id="map">{{ map_svg }}</figure>

<h2>Protocols</h2>
<table id="protocols"><thead><tr><th>protocol</th><th>messages</th><th>malformed</th>
<th>exceptions</th><th>most used services</th></tr></thead><tbody>
{% for row in statistics %}<tr><td>{{ row.protocol }}</td><td>{{ row.messages }}</td>
<td>{{ row.malformed }}</td><td>{{ row.exceptions }}</td>
<td>{% for service, count in row.services %}{{ service }}: {{ count }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}</tbody></table>

<h2>Alerts</h2>
{% if alerts %}
<figure id="timeline">{{ timeline_svg }}</figure>
<table id="alerts"><thead><tr><th>time (UTC)</th><th>score</th><th>model</th>
<th>device</th><th>ATT&amp;CK</th><th>explanation</th></tr></thead><tbody>
{% for alert in alerts %}<tr><td data-sort="{{ alert.ts }}">{{ alert.get("time", alert.ts) }}</td>
<td class="score">{{ alert.get("score", "") }}</td><td>{{ alert.get("model", "") }}</td>
<td>{{ alert.get("device", "") }}</td>
<td>{% for technique in alert.get("techniques", []) %}{{ technique.get("id", technique) if technique is mapping else technique }}{% if technique is mapping and technique.get("name") %} {{ technique.name }}{% endif %}{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{{ alert.get("explanation", "") }}</td></tr>
{% endfor %}</tbody></table>
{% else %}<p id="no-alerts">No alerts.</p>{% endif %}

<script>
(function () {
  var table = document.getElementById("assets");
  var body = table.tBodies[0];
  var filters = table.querySelectorAll("tr.filters input");
  var search = document.getElementById("search");
  function applyFilters() {
    var words = search.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (row) {
      var text = row.textContent.toLowerCase();
      var keep = !words || text.indexOf(words) >= 0;
      Array.prototype.forEach.call(filters, function (input) {
        var wanted = input.value.toLowerCase();
        var cell = row.cells[Number(input.dataset.column)];
        if (wanted && cell.textContent.toLowerCase().indexOf(wanted) < 0) keep = false;
      });
      row.style.display = keep ? "" : "none";
    });
  }
  search.addEventListener("input", applyFilters);
  Array.prototype.forEach.call(filters, function (input) {
    input.addEventListener("input", applyFilters);
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
    header.addEventListener("click", function () {
      var ascending = !header.classList.contains("sorted-asc");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.classList.remove("sorted-asc", "sorted-desc");
      });
      header.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index].dataset.sort || a.cells[index].textContent;
        var y = b.cells[index].dataset.sort || b.cells[index].textContent;
        var nx = Number(x), ny = Number(y);
        var order = (!isNaN(nx) && !isNaN(ny) && x !== "" && y !== "")
          ? nx - ny : x.localeCompare(y, undefined, {numeric: true});
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
</script>
</body></html>
"""
