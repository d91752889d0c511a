"""The detection models as declarative definitions, and the ATT&CK techniques they name.

Each model is a row of :data:`MODELS`: what it scores, its base score and
threshold, how long a repeat of the same finding stays throttled, and the
ATT&CK techniques it maps to. The code that evaluates a model lives in
:mod:`otdpi.learner.detector`, under the model's name; this table is what a
reviewer reads to know what can alert and why.

Technique ids and names were checked against MITRE's public ATT&CK for ICS
and Enterprise matrices (v12 to v16 pages).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Technique:
    """One ATT&CK technique: ``matrix`` is ``ics`` or ``enterprise``."""

    id: str
    name: str
    matrix: str = "ics"


TECHNIQUES = {
    t.id: t
    for t in (
        Technique("T0806", "Brute Force I/O"),
        Technique("T0809", "Data Destruction"),
        Technique("T0814", "Denial of Service"),
        Technique("T0815", "Denial of View"),
        Technique("T0816", "Device Restart/Shutdown"),
        Technique("T0830", "Adversary-in-the-Middle"),
        Technique("T0836", "Modify Parameter"),
        Technique("T0843", "Program Download"),
        Technique("T0845", "Program Upload"),
        Technique("T0846", "Remote System Discovery"),
        Technique("T0849", "Masquerading"),
        Technique("T0855", "Unauthorized Command Message"),
        Technique("T0858", "Change Operating Mode"),
        Technique("T0861", "Point & Tag Identification"),
        Technique("T0869", "Standard Application Layer Protocol"),
        Technique("T0885", "Commonly Used Port"),
        Technique("T0886", "Remote Services"),
        Technique("T0888", "Remote System Information Discovery"),
        Technique("T1001.002", "Data Obfuscation: Steganography", "enterprise"),
        Technique("T1029", "Scheduled Transfer", "enterprise"),
        Technique("T1071", "Application Layer Protocol", "enterprise"),
        Technique("T1571", "Non-Standard Port", "enterprise"),
        Technique("T1573", "Encrypted Channel", "enterprise"),
    )
}


@dataclass(frozen=True, slots=True)
class Model:
    """A detection model.

    Attributes
    ----------
    name
        ``family/name``: ``ot/...`` for industrial behaviour, ``it/...`` for
        the IT side.
    scores
        what it looks at, in one sentence.
    base_score
        score (0 to 100) of a plain occurrence; the detector adds or removes
        points for aggravating or mitigating context.
    threshold
        alerts below this score are dropped.
    throttle
        seconds during which a repeat of the same finding (same model, same
        key) only increments the first alert's ``repeats``.
    techniques
        ATT&CK technique ids.
    """

    name: str
    scores: str
    base_score: int
    threshold: int
    throttle: float
    techniques: tuple[str, ...]


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "ot/new-peer",
            "a client talking an industrial protocol to a server "
            "it has never talked to",
            60,
            40,
            3600,
            ("T0886", "T0846"),
        ),
        Model(
            "ot/new-protocol",
            "a device serving a protocol it has never served",
            55,
            40,
            3600,
            ("T0869",),
        ),
        Model(
            "ot/new-service",
            "a service or function code never used on a known relationship",
            45,
            40,
            3600,
            ("T0855",),
        ),
        Model(
            "ot/first-write",
            "a write to an address range the client never wrote on that server",
            70,
            40,
            3600,
            ("T0836", "T0855"),
        ),
        Model(
            "ot/first-control",
            "a control command the relationship never used",
            70,
            40,
            3600,
            ("T0855",),
        ),
        Model(
            "ot/program-download",
            "program or block download to a controller",
            85,
            40,
            3600,
            ("T0843",),
        ),
        Model(
            "ot/program-upload",
            "program or block upload from a controller",
            70,
            40,
            3600,
            ("T0845",),
        ),
        Model(
            "ot/block-delete", "deletion of a program block", 85, 40, 3600, ("T0809",)
        ),
        Model(
            "ot/restart",
            "a device restart command the relationship never sent",
            85,
            40,
            3600,
            ("T0816",),
        ),
        Model(
            "ot/cpu-stop",
            "a stop or operating-mode change command the relationship never sent",
            90,
            40,
            3600,
            ("T0858", "T0816"),
        ),
        Model(
            "ot/recon-identify",
            "device identification or system-information "
            "reads by a client that never made them",
            65,
            40,
            3600,
            ("T0888",),
        ),
        Model(
            "ot/scan",
            "many new servers, services or address ranges touched by "
            "one client within a minute",
            75,
            40,
            600,
            ("T0846", "T0861"),
        ),
        Model(
            "ot/value-out-of-range",
            "a written or polled value outside the range learned for its address "
            "on the relationship, or a written value outside what the server was "
            "seen holding there (any client)",
            55,
            40,
            3600,
            ("T0836",),
        ),
        Model(
            "ot/cadence-stop",
            "a periodic polling relationship that stopped",
            60,
            40,
            3600,
            ("T0815",),
        ),
        Model(
            "ot/cadence-change",
            "a periodic polling relationship whose rate changed several-fold",
            50,
            40,
            3600,
            ("T0814",),
        ),
        Model(
            "ot/request-flood",
            "a sender's requests (or unsolicited reports) to one peer surging to "
            "ten times its learned rate, and at least 30 a second",
            70,
            40,
            600,
            ("T0814",),
        ),
        Model(
            "ot/mac-change",
            "a local IP address seen from a MAC address newer than the one it "
            "had (ARP spoofing, a spoofed source, a swapped device)",
            75,
            40,
            600,
            ("T0830", "T0849"),
        ),
        Model(
            "ot/covert-channel",
            "polled or written values that change like a data stream (evenly "
            "spread, no continuity between polls) instead of a process: data "
            "hidden in registers",
            75,
            40,
            86400,
            ("T0869", "T1001.002"),
        ),
        Model(
            "it/rare-external",
            "a connection to an external endpoint not in the baseline",
            45,
            40,
            3600,
            ("T1071", "T0869"),
        ),
        Model(
            "it/tls-self-signed",
            "TLS to a rare external endpoint whose "
            "certificate is self-signed or unrelated to the server name",
            80,
            40,
            3600,
            ("T1573", "T1071"),
        ),
        Model(
            "it/beacon",
            "periodic reconnections, or periodic messages inside one "
            "long TLS connection, to a rare external endpoint",
            80,
            40,
            3600,
            ("T1071", "T1573", "T1029"),
        ),
    )
}


def techniques_of(model: Model, extra: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The technique records of a model (plus ``extra`` ids) for an alert."""
    ids = list(model.techniques) + [t for t in extra if t not in model.techniques]
    return [
        {"id": t, "name": TECHNIQUES[t].name, "matrix": TECHNIQUES[t].matrix}
        for t in ids
    ]
