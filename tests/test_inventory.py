"""Asset inventory from Messages: keys, roles, peers, stations, claims and merging."""

from __future__ import annotations

from otdpi.inventory import Inventory
from otdpi.message import Endpoint, Message

PLC = Endpoint("10.0.0.2", 502, "00:80:f4:00:00:02")      # a Telemecanique OUI
HMI = Endpoint("10.0.0.5", 40001, "00:0e:8c:00:00:05")    # a Siemens OUI
ROUTER_MAC = "00:00:0c:00:00:01"
REMOTE_A = Endpoint("192.0.2.10", 40002, ROUTER_MAC)
REMOTE_B = Endpoint("192.0.2.11", 40003, ROUTER_MAC)


def msg(src, dst, kind, frame=1, ts=1.0, identity=None, unit_id=1):
    return Message(ts, frame, 1, src, dst, "modbus", kind, "read_holding_registers", 3,
                   "read", fields={"unit_id": unit_id}, identity=identity or {})


def by_ip(inventory: Inventory) -> dict[str, dict]:
    return {ip: a for a in inventory.assets() for ip in a["ips"]}


def test_local_devices_are_keyed_by_mac_with_vendor_and_roles():
    inv = Inventory()
    inv.add(msg(HMI, PLC, "request"))
    inv.add(msg(PLC, HMI, "response"))
    assets = by_ip(inv)
    plc, hmi = assets["10.0.0.2"], assets["10.0.0.5"]
    assert plc["key"] == "mac:00:80:f4:00:00:02"
    assert "Telemechanique" in plc["mac_vendor"]
    assert "Siemens" in hmi["mac_vendor"]
    assert plc["protocols"]["modbus"]["roles"] == ["server"]
    assert hmi["protocols"]["modbus"]["roles"] == ["client"]
    assert plc["role"] == "field device" and hmi["role"] == "master"
    assert [p["ip"] for p in plc["peers"]] == ["10.0.0.5"]


def test_hosts_behind_a_router_keep_their_ip_as_key():
    inv = Inventory()
    inv.add(msg(REMOTE_A, PLC, "request"))
    inv.add(msg(REMOTE_B, PLC, "request"))
    assets = by_ip(inv)
    assert assets["192.0.2.10"]["key"] == "ip:192.0.2.10"
    assert assets["192.0.2.11"]["key"] == "ip:192.0.2.11"
    assert assets["192.0.2.10"]["mac_vendor"] is None


def test_unit_ids_behind_one_address_make_a_gateway():
    inv = Inventory()
    for unit_id in (1, 2, 7, 0, 255):
        inv.add(msg(PLC, HMI, "response", unit_id=unit_id))
    plc = by_ip(inv)["10.0.0.2"]
    assert plc["stations"]["modbus"]["unit_id"] == [1, 2, 7]
    assert plc["gateway"] is True and plc["role"] == "gateway"


def test_conflicting_claims_are_all_kept_with_provenance():
    inv = Inventory()
    inv.add(msg(PLC, HMI, "response", frame=10, ts=5.0, identity={"vendor": "Schneider"}),
            capture="a.pcap")
    inv.add(msg(PLC, HMI, "response", frame=20, ts=6.0, identity={"vendor": "Schneider"}),
            capture="a.pcap")
    inv.add(msg(PLC, HMI, "response", frame=30, ts=7.0, identity={"vendor": "Acme"}),
            capture="b.pcap")
    vendor = by_ip(inv)["10.0.0.2"]["identity"]["vendor"]
    assert [(c["value"], c["seen"], c["frame"], c["capture"]) for c in vendor] == [
        ("Schneider", 2, 10, "a.pcap"), ("Acme", 1, 30, "b.pcap")]
    assert by_ip(inv)["10.0.0.2"]["summary"]["vendor"] == "Schneider"


def test_merging_two_inventories_equals_one_run_over_both():
    first = [msg(HMI, PLC, "request", frame=i, ts=float(i)) for i in range(1, 4)]
    second = [msg(PLC, HMI, "response", frame=i, ts=float(i), identity={"model": "M340"},
                  unit_id=3) for i in range(4, 7)] + [msg(REMOTE_A, PLC, "request")]
    together = Inventory()
    together.update(first + second, capture="x")
    left, right = Inventory(), Inventory()
    left.update(first, capture="x")
    right.update(second, capture="x")
    assert left.merge(right).assets() == together.assets()


def test_zero_and_group_macs_never_key_an_asset():

    inv = Inventory()
    client = Endpoint("127.0.0.1", 40000, "01:02:03:04:05:06")  # group bit set
    server = Endpoint("10.9.9.9", 502, "00:00:00:00:00:00")
    inv.add(Message(1.0, 1, 1, client, server, "modbus", "request", "read", 3, "read"))
    assert sorted(a["key"] for a in inv.assets()) == ["ip:10.9.9.9", "ip:127.0.0.1"]


def test_a_claimed_role_wins_over_the_coarse_role():
    inv = Inventory()
    inv.add(msg(HMI, PLC, "request", identity={"role": "engineering station"}))
    inv.add(msg(HMI, PLC, "request", frame=2, identity={"role": "engineering station"}))
    inv.add(msg(HMI, PLC, "request", frame=3, identity={"role": "HMI"}))
    inv.add(msg(PLC, HMI, "response"))
    assets = by_ip(inv)
    assert assets["10.0.0.5"]["role"] == "engineering station"
    assert assets["10.0.0.2"]["role"] == "field device"


def test_a_layer2_publisher_joins_the_asset_of_its_mac_and_groups_are_no_assets():
    inv = Inventory()
    inv.add(msg(HMI, PLC, "request"))
    inv.add(msg(PLC, HMI, "response"))
    publisher = Endpoint(None, None, PLC.mac)
    group = Endpoint(None, None, "01:0c:cd:01:00:01")
    inv.add(Message(2.0, 3, 2, publisher, group, "goose", "unsolicited", "publish", None,
                    "data", identity={"ied_name": "IED1"}))
    lone = Endpoint(None, None, "00:80:f4:00:00:09")
    inv.add(Message(2.0, 4, 3, lone, group, "goose", "unsolicited", "publish", None,
                    "data"))
    inv.add(msg(HMI, Endpoint("224.0.0.9", 2423, "01:00:5e:00:00:09"), "request"))
    inv.add(msg(HMI, Endpoint("10.0.0.255", 2423, "ff:ff:ff:ff:ff:ff"), "request"))
    assets = {a["key"]: a for a in inv.assets()}
    assert set(assets) == {"mac:00:80:f4:00:00:02", "mac:00:0e:8c:00:00:05",
                           "mac:00:80:f4:00:00:09"}
    plc = assets["mac:00:80:f4:00:00:02"]
    assert plc["ips"] == ["10.0.0.2"] and "goose" in plc["protocols"]
    assert plc["summary"]["ied_name"] == "IED1"
    assert assets["mac:00:80:f4:00:00:09"]["ips"] == []
    hmi_peers = {p["ip"] for p in assets["mac:00:0e:8c:00:00:05"]["peers"]}
    assert {"224.0.0.9", "10.0.0.255"} <= hmi_peers


def test_the_earliest_sighting_is_the_provenance_in_any_reading_order():
    late = msg(PLC, HMI, "response", frame=40, ts=9.0, identity={"vendor": "Acme"})
    early = msg(PLC, HMI, "response", frame=3, ts=2.0, identity={"vendor": "Acme"})
    one_run = Inventory()
    one_run.add(late, capture="b.pcap")
    one_run.add(early, capture="a.pcap")
    left, right = Inventory(), Inventory()
    left.add(late, capture="b.pcap")
    right.add(early, capture="a.pcap")
    assert one_run.assets() == left.merge(right).assets()
    claim = by_ip(one_run)["10.0.0.2"]["identity"]["vendor"][0]
    assert (claim["capture"], claim["frame"], claim["seen"]) == ("a.pcap", 3, 2)


def test_headline_facts_come_from_one_protocol():
    from otdpi.inventory import headline

    inv = Inventory()
    s7 = {"vendor": "Siemens", "model": "S7-300", "firmware": "V3.2.6"}
    hl7 = {"software_vendor": "otdpi test bench", "software_version": "0.1.0"}
    inv.add(Message(1.0, 1, 1, PLC, HMI, "s7comm", "response", "szl", 4, "identify",
                    identity=s7))
    inv.add(Message(1.0, 2, 2, PLC, HMI, "hl7", "request", "ADT", None, "data",
                    identity=hl7))
    asset = by_ip(inv)["10.0.0.2"]
    facts = headline(asset["summary"], asset["identity"])
    assert (facts["vendor"], facts["model"], facts["firmware"]) == (
        "Siemens", "S7-300", "V3.2.6")
    inv2 = Inventory()
    inv2.add(Message(1.0, 1, 1, PLC, HMI, "s7comm", "response", "szl", 4, "identify",
                     identity={"vendor": "Siemens", "model": "S7-300"}))
    inv2.add(Message(1.0, 2, 2, PLC, HMI, "hl7", "request", "ADT", None, "data",
                     identity=hl7))
    asset = by_ip(inv2)["10.0.0.2"]
    assert headline(asset["summary"], asset["identity"])["firmware"] == ""
