"""Live capture: packets from a network interface, through Wireshark's dumpcap, as Records.

Capturing is left to ``dumpcap`` (it comes with tshark): it opens the interface
with the operating system's capture facility, compiles the capture filter and
holds the privileges, and writes classic pcap to a pipe. This module reads that
pipe record by record, as soon as each record arrives, and yields the same
:class:`~otdpi.capture.Record` a capture file gives, so the engine runs one
pipeline for files and for live traffic.

Stopping: :meth:`LiveCapture.stop` (the CLI calls it on Ctrl-C) asks dumpcap to
finish; dumpcap flushes what it holds and closes the pipe, the records end, and
the engine flushes its open flows. Nothing that reached the pipe is lost.
"""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator

from otdpi.capture import CaptureProblem, Record
from otdpi.errors import CaptureError

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
# dumpcap never writes a record above its snap length; a larger header means
# the pipe is out of step, and reading stops rather than allocating it.
MAX_RECORD_LENGTH = 256 * 1024


class LiveCapture:
    """``dumpcap`` on one interface, read as a stream of Records.

    Parameters
    ----------
    interface
        interface name as dumpcap knows it (``dumpcap -D`` lists them).
    capture_filter
        a BPF capture filter (``tcp port 502``), applied by the kernel.
    duration
        stop after this many seconds; None runs until stopped.
    packets
        stop after this many packets; None runs until stopped.

    Raises
    ------
    CaptureError
        dumpcap is missing, or it could not open the interface (no such
        interface, no permission, bad filter); the message carries dumpcap's.
    """

    def __init__(self, interface: str, capture_filter: str | None = None, *,
                 duration: float | None = None, packets: int | None = None) -> None:
        dumpcap = shutil.which("dumpcap")
        if dumpcap is None:
            raise CaptureError("live capture needs dumpcap (Debian: apt-get install tshark)")
        command = [dumpcap, "-q", "-P", "-i", interface, "-w", "-"]
        if capture_filter:
            command += ["-f", capture_filter]
        if duration is not None:
            command += ["-a", f"duration:{max(1, round(duration))}"]
        if packets is not None:
            command += ["-c", str(packets)]
        self.path = f"live:{interface}"
        self.size = 0
        self.problems: list[CaptureProblem] = []
        self.problem_count = 0
        self.records_read = 0
        # A new session, so that a Ctrl-C at the terminal reaches us alone and
        # we decide how dumpcap stops (with SIGTERM, after which it flushes).
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        self._pipe = self._process.stdout
        header = self._pipe.read(24)
        if len(header) < 24 or header[:4] not in PCAP_MAGIC:
            raise CaptureError(f"{self.path}: dumpcap did not start: {self._stderr()}")
        order, self._divisor = PCAP_MAGIC[header[:4]]
        self._linktype = struct.unpack(order + "I", header[20:24])[0] & 0xFFFF
        self._record_header = struct.Struct(order + "IIII")

    def __iter__(self) -> Iterator[Record]:
        read = self._pipe.read
        unpack = self._record_header.unpack
        index = 0
        while True:
            header = read(16)
            if len(header) < 16:
                break
            sec, frac, incl_len, orig_len = unpack(header)
            if incl_len > MAX_RECORD_LENGTH:
                self._problem(index + 1, f"record header claims {incl_len} bytes; "
                              "the pipe is out of step, capture stops")
                break
            data = read(incl_len)
            if len(data) < incl_len:
                break
            index += 1
            self.records_read = index
            yield Record(index, sec + frac / self._divisor, self._linktype, data,
                         orig_len, 0)

    def tell(self) -> int:
        return 0

    def stop(self) -> None:
        """Ask dumpcap to finish; the records end once it has flushed."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._pipe.close()
        self._process.stderr.close()

    def _stderr(self) -> str:
        self.stop()
        try:
            _, err = self._process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate()
        lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self._process.returncode}"

    def _problem(self, index: int, detail: str) -> None:
        self.problem_count += 1
        self.problems.append(CaptureProblem(self.path, index, detail))
