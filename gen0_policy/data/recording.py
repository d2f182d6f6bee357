"""One recorded episode = one rosbag2 bag in MCAP storage, written by ``rosbags`` without rclpy.

Messages arrive already serialized (CDR bytes from a raw subscription) and go into the bag as
they are. A writer thread owns the file so subscription callbacks never wait on the disk, and it
closes the current MCAP chunk every ``flush_period_s``: a recorder killed mid-episode leaves every
flushed chunk readable (``gen0 data repair`` turns such a bag into a complete one). A write error
(disk full, file too large) is latched: the episode stops, what was flushed stays, and the error
is reported instead of silently dropping messages.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import (
    Nodetype,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from gen0_policy.errors import DatasetError

BAG_VERSION = 9  # rosbag2 metadata version written by Jazzy


class RecordingError(DatasetError):
    """The episode bag cannot be created or written (disk full, permissions, unknown message type)."""


def _share_prefixes() -> list[Path]:
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return [*prefixes, Path(sys.prefix)]


def _find_msg_file(msgtype: str) -> Path | None:
    package, kind, name = msgtype.split("/")
    for prefix in _share_prefixes():
        path = prefix / "share" / package / kind / f"{name}.msg"
        if path.is_file():
            return path
    return None


def typestore_for(msgtypes: Iterable[str]) -> Typestore:
    """Jazzy's standard types plus any others (gen0_msgs, ...) read from installed ``.msg`` files."""
    store = get_typestore(Stores.ROS2_JAZZY)
    add_types(store, msgtypes)
    return store


def add_types(store: Typestore, msgtypes: Iterable[str]) -> None:
    """Register ``msgtypes`` and the types they use, from installed ``.msg`` files, if ``store`` lacks them."""
    found: dict = {}
    pending = [t for t in msgtypes if t not in store.fielddefs]
    while pending:
        msgtype = pending.pop()
        if msgtype in store.fielddefs or msgtype in found:
            continue
        path = _find_msg_file(msgtype)
        if path is None:
            raise RecordingError(
                f"message type {msgtype} is unknown: no share/{msgtype}.msg under "
                f"{[str(p) for p in _share_prefixes()]}; source the workspace that provides it"
            )
        types = get_types_from_msg(path.read_text(), msgtype)
        found.update(types)
        pending += [ref for _, fields in types.values() for _, node in fields for ref in _referenced(node)]
    if found:
        store.register(found)


def _referenced(node: tuple) -> list[str]:
    """Message types one field definition refers to (rosbags' (Nodetype, spec) trees)."""
    kind, spec = node
    if kind == Nodetype.NAME:
        return [spec]
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return _referenced(spec[0])
    return []


_INFINITE = QosTime(9223372036, 854775807)  # how rosbag2 writes an unset deadline/lifespan


def subscription_qos(publishers: Iterable[tuple[bool, bool]]) -> tuple[bool, bool] | None:
    """(reliable, transient_local) for a subscription every discovered publisher, given as (reliable,
    transient_local), can deliver to; None while none is discovered (choosing then would be a guess:
    a reliable reader gets nothing from a best-effort camera)."""
    publishers = list(publishers)
    if not publishers:
        return None
    return all(r for r, _ in publishers), all(t for _, t in publishers)


def offered_qos(reliable: bool, transient_local: bool = False, depth: int = 10) -> Qos:
    """The QoS a topic's publishers offered, as rosbag2 stores it, so playback can offer the same."""
    return Qos(
        QosHistory.KEEP_LAST,
        depth,
        QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        _INFINITE,
        _INFINITE,
        QosLiveliness.AUTOMATIC,
        _INFINITE,
        False,
    )


@dataclass
class BagStats:
    path: Path
    message_count: int
    duration_s: float
    per_topic: dict[str, int] = field(default_factory=dict)
    error: str = ""


class EpisodeBag:
    """Writes one episode bag from serialized messages; thread-safe ``write`` from any callback."""

    def __init__(
        self,
        path: Path,
        typestore: Typestore,
        *,
        flush_period_s: float = 0.5,
        fsync: bool = False,
        custom_data: dict[str, str] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise RecordingError(f"bag {self.path} exists already; episode ids must be unique")
        self.typestore, self.flush_period_s, self.fsync = typestore, flush_period_s, fsync
        self.on_error = on_error
        self.custom_data = dict(custom_data or {})
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        for key, value in self.custom_data.items():
            self._writer.set_custom_data(key, value)
        try:
            self._writer.open()
        except (OSError, WriterError) as exc:
            raise RecordingError(f"cannot create bag {self.path}: {exc}") from exc
        storage = self._writer.storage
        if not (hasattr(storage, "close_chunk") and hasattr(storage, "bio") and hasattr(storage, "chunk")):
            raise RecordingError("this rosbags version has no MCAP chunk flushing; install rosbags 0.11.x")
        self._connections: dict[str, object] = {}
        self._counts: dict[str, int] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the writer between the thread and add_topic/close
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self.error = ""
        self.accepted = 0  # messages handed to write() while the bag was healthy
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"bag-{self.path.name}", daemon=True)
        self._thread.start()

    # -- producer side ----------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, offered_qos: Iterable = ()) -> None:
        """Register a topic before writing to it (idempotent)."""
        if topic in self._connections:
            return
        add_types(self.typestore, [msgtype])
        with self._lock:
            self._guard(
                lambda: self._connections.__setitem__(
                    topic,
                    self._writer.add_connection(
                        topic, msgtype, typestore=self.typestore, offered_qos_profiles=list(offered_qos)
                    ),
                )
            )
        self._counts[topic] = 0

    def write(self, topic: str, data: bytes, timestamp_ns: int) -> bool:
        """Queue one serialized message; False (message not accepted) once the bag has failed or closed."""
        if self.error or self._closing:
            return False
        if topic not in self._connections:
            raise RecordingError(f"topic {topic} was not added to bag {self.path}; call add_topic first")
        self.accepted += 1
        self._queue.put((topic, data, timestamp_ns))
        return True

    @property
    def topics(self) -> list[str]:
        return list(self._connections)

    @property
    def message_count(self) -> int:
        """Messages written into the bag so far (accepted ones still queued not included)."""
        return sum(self._counts.values())

    # -- writer thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_period_s / 2)
            except queue.Empty:
                item = None
            if item is not None and item[0] is None:  # close sentinel
                return
            if item is not None and not self.error:
                with self._lock:
                    self._write_one(*item)
            if time.monotonic() - last_flush >= self.flush_period_s and not self.error:
                with self._lock:
                    self._guard(self._flush)
                last_flush = time.monotonic()

    def _write_one(self, topic: str, data: bytes, stamp: int) -> None:
        if self._guard(lambda: self._writer.write(self._connections[topic], stamp, data)):
            self._counts[topic] += 1
            self._first_ns = stamp if self._first_ns is None else min(self._first_ns, stamp)
            self._last_ns = stamp if self._last_ns is None else max(self._last_ns, stamp)

    def _flush(self) -> None:
        storage = self._writer.storage
        if storage is not None and storage.chunk.bio.tell():
            storage.close_chunk()
        if storage is not None:
            storage.bio.flush()
            if self.fsync:
                os.fsync(storage.bio.fileno())

    def _guard(self, action: Callable[[], object]) -> bool:
        """Run a writer action; latch the first failure as this episode's error."""
        try:
            action()
            return True
        except (OSError, WriterError) as exc:
            reason = "disk full" if getattr(exc, "errno", None) == errno.ENOSPC else "write failed"
            if getattr(exc, "errno", None) == errno.EFBIG:
                reason = "file size limit reached"
            self._fail(f"{reason} while writing {self.path}: {exc}")
            return False

    def _fail(self, message: str) -> None:
        if not self.error:
            self.error = message
            if self.on_error is not None:
                self.on_error(message)

    # -- closing ----------------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            self._guard(self._flush)

    def close(self, custom_data: dict[str, str] | None = None) -> BagStats:
        """Write what is queued, then the MCAP summary and metadata.yaml. After an error, keep what was flushed."""
        self._closing = True
        self._queue.put((None, None, None))
        self._thread.join()
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(key, value)
        with self._lock:
            if not self.error and self._guard(self._writer.close):
                self._stamp_distro()
            if self.error:  # the footer could not be written: leave the flushed chunks, as after a crash
                self._abort()
        first, last = self._first_ns or 0, self._last_ns or 0
        return BagStats(self.path, self.message_count, (last - first) / 1e9, dict(self._counts), self.error)

    def _stamp_distro(self) -> None:
        """rosbags names itself as the distro; the bag was recorded on ROS_DISTRO (Jazzy), as rosbag2 writes it."""
        meta = self.path / "metadata.yaml"
        distro = os.environ.get("ROS_DISTRO", "jazzy")
        meta.write_text(meta.read_text().replace("ros_distro: rosbags", f"ros_distro: {distro}"))

    def _abort(self) -> None:
        storage = self._writer.storage
        if storage is None:
            return
        with contextlib.suppress(OSError):  # buffered bytes that no longer fit; flushed chunks are on disk
            storage.bio.close()
        self._writer.storage = None

    def discard(self) -> None:
        """Stop and delete the bag (operator's choice at stop)."""
        self._closing = True
        self._queue.put((None, None, None))
        self._thread.join()
        with self._lock:
            self._abort()
        shutil.rmtree(self.path, ignore_errors=True)


def repair_bag(path: Path, out: Path | None = None) -> tuple[Path, int]:
    """Rebuild a bag whose recorder died (no MCAP summary, no metadata.yaml) from its flushed chunks.

    Reads the MCAP front to back with the ``mcap`` package until the data stops, and writes every
    complete message into a new, complete bag (default: ``<bag>_repaired``). Returns (bag, messages).
    """
    from mcap.exceptions import EndOfFile, McapError
    from mcap.reader import NonSeekingReader

    path = Path(path)
    files = sorted(path.glob("*.mcap"))
    if not files:
        raise DatasetError(f"{path} holds no .mcap file to repair")
    out = Path(out) if out else path.with_name(path.name + "_repaired")
    if out.exists():
        raise DatasetError(f"{out} exists already; remove it or choose another output")
    messages: list[tuple[str, str, int, bytes]] = []
    for file in files:
        with file.open("rb") as f:
            try:
                for schema, channel, message in NonSeekingReader(f).iter_messages(log_time_order=False):
                    messages.append((channel.topic, schema.name, message.log_time, message.data))
            except (EndOfFile, McapError):
                pass  # the data stops where the recorder died
    if not messages:
        raise DatasetError(f"{path}: no complete message survived; nothing to repair")
    store = typestore_for(sorted({m[1] for m in messages}))
    writer = Writer(out, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections: dict[str, Any] = {}
    for topic, msgtype, stamp, data in sorted(messages, key=lambda m: m[2]):
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        writer.write(connections[topic], stamp, data)
    writer.close()
    return out, len(messages)
