"""The one-pass pipeline: capture records → packets → flows → dissectors → Messages.

This is the only place where the stages meet; each stage stays usable alone.
Nothing here keeps messages: they are yielded as they complete, so memory
depends on the number of open flows, never on the length of a capture.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from otdpi.capture import CaptureProblem, open_capture
from otdpi.decode import LINKTYPE_ETHERNET, Decoder
from otdpi.flows import Flow, FlowConfig, FlowTable
from otdpi.message import STATUS_OK, Message
from otdpi.registry import Selector

ProgressCallback = Callable[[int, int], None]


class Engine:
    """Reads captures and yields the Messages of every flow a dissector claims.

    Parameters
    ----------
    protocols
        registry names to run; None runs every installed dissector.
    flow_config
        flow-table limits (idle timeout, table and buffer caps).
    on_flow_end
        called with each :class:`~otdpi.flows.Flow` as it ends.
    progress
        called now and then with (bytes read, total bytes) of the current file.
    shard
        ``(index, count)``: dissect only that share of each file's flows (see
        :class:`~otdpi.flows.FlowTable`); the packet counters still count
        every record read.

    Attributes
    ----------
    counters
        packets, messages, malformed messages, and every capture, decode and
        flow-table counter, summed over the files read so far.
    problems
        damaged-record reports from the capture reader.
    """

    def __init__(
        self,
        protocols: Iterable[str] | None = None,
        flow_config: FlowConfig | None = None,
        on_flow_end: Callable[[Flow], None] | None = None,
        progress: ProgressCallback | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.selector = Selector(tuple(protocols) if protocols else None)
        self.shard = shard
        self.flow_config = flow_config or FlowConfig()
        self.on_flow_end = on_flow_end
        self.progress = progress
        self.counters: Counter[str] = Counter()
        self.problems: list[CaptureProblem] = []
        self.current_path: str | None = None
        self._flow_ids = 0

    def messages(self, path: str | os.PathLike) -> Iterator[Message]:
        """Yield the messages of one capture file, in the order they complete."""
        self.current_path = os.fspath(path)
        with open_capture(path) as reader:
            yield from self._run(reader, reader)

    def live(self, interface: str, capture_filter: str | None = None, **limits
             ) -> Iterator[Message]:
        """Yield the messages of packets captured live on ``interface``.

        Capture runs in Wireshark's ``dumpcap`` (see :mod:`otdpi.live`);
        ``limits`` are its ``duration`` (seconds) and ``packets`` stop
        conditions. The stream ends when the capture stops, for example when
        :meth:`otdpi.live.LiveCapture.stop` is called on Ctrl-C; flows still
        open are then flushed, so nothing seen is lost.
        """
        from otdpi.live import LiveCapture

        self.current_path = f"live:{interface}"
        with LiveCapture(interface, capture_filter, **limits) as capture:
            self.capture = capture
            yield from self._run(capture, capture)

    def _run(self, records, reader) -> Iterator[Message]:
        """The pipeline over one stream of records; ``reader`` has the problem counts."""
        decoder = Decoder()
        # Flow ids continue across files so that ids are unique within a run.
        table = FlowTable(self.selector, self.flow_config, self.on_flow_end,
                          first_flow_id=self._flow_ids + 1, shard=self.shard)
        counters = self.counters
        packets = messages = malformed = 0
        progress = self.progress
        total = reader.size if progress else 0
        decode = decoder.decode
        process = table.process
        process_ethernet = table.process_ethernet
        try:
            for index, ts, linktype, data, _, _ in records:
                packets += 1
                if progress is not None and not packets & 0x3FFF:
                    progress(reader.tell(), total)
                found = process_ethernet(data, ts, index) if linktype == LINKTYPE_ETHERNET else None
                if found is None:
                    packet = decode(linktype, data, ts)
                    if packet is None:
                        continue
                    found = process(packet, ts, index)
                if found:
                    for message in found:
                        messages += 1
                        status = message.status
                        if status is not STATUS_OK and status.state == "malformed":
                            malformed += 1
                        yield message
            for message in table.flush():
                messages += 1
                if message.status.state == "malformed":
                    malformed += 1
                yield message
        finally:
            self._flow_ids = table.next_flow_id - 1
            counters["packets"] += packets
            counters["messages"] += messages
            counters["messages_malformed"] += malformed
            counters["files"] += 1
            counters.update(decoder.counters)
            counters.update(table.counters)
            counters["capture_problems"] += reader.problem_count
            self.problems.extend(reader.problems)
            if progress is not None:
                progress(total, total)

    def read(self, paths: Iterable[str | os.PathLike]) -> Iterator[Message]:
        """Yield the messages of several captures, one file after the other."""
        for path in paths:
            yield from self.messages(path)
