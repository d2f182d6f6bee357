"""What the recorder node does, without ROS: start/stop episodes, one :class:`EpisodeBag` each.

The node only subscribes (raw bytes) and converts :class:`EpisodeMeta` to gen0_msgs/EpisodeInfo.
Here live the rules: one episode at a time, a clear answer to a stop without a start or a start
during an episode, the episode's metadata written into its own bag (as gen0_msgs/EpisodeInfo at
start and at stop, and in metadata.yaml's custom_data), and an episode whose bag failed (disk
full) stopped at once and reported at the next stop.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rosbags.interfaces import Qos

from gen0_policy.data.recording import EpisodeBag, RecordingError, offered_qos, typestore_for
from gen0_policy.messages import split_nanoseconds

EPISODE_INFO_TYPE = "gen0_msgs/msg/EpisodeInfo"


@dataclass
class EpisodeMeta:
    """gen0_msgs/EpisodeInfo as plain data (times in ns of the recorder's clock)."""

    episode_id: str
    instruction: str = ""
    task: str = ""
    embodiment: str = ""
    operator_name: str = ""
    tags: list[str] = field(default_factory=list)
    start_ns: int = 0
    stop_ns: int = 0
    recording: bool = False
    success: bool = False
    notes: str = ""
    bag_path: str = ""
    message_count: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class Answer:
    """A service answer: success, what happened, and the episode it concerns."""

    success: bool
    message: str
    meta: EpisodeMeta | None = None
    duration_s: float = 0.0


class EpisodeRecorder:
    def __init__(
        self,
        output_dir: Path,
        *,
        embodiment: str = "",
        info_topic: str = "/episode_info",
        flush_period_s: float = 0.5,
        fsync: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.output_dir = Path(output_dir).expanduser()
        self.embodiment, self.info_topic = embodiment, info_topic
        self.flush_period_s, self.fsync, self.clock_ns = flush_period_s, fsync, clock_ns
        self.typestore = typestore_for([EPISODE_INFO_TYPE])
        self.topics: dict[str, tuple[str, Qos]] = {}  # recorded topic -> (type, offered QoS)
        self.bag: EpisodeBag | None = None
        self.meta: EpisodeMeta | None = None
        self.failed: tuple[EpisodeMeta, str] | None = None  # an episode the recorder had to stop itself

    @property
    def recording(self) -> bool:
        return self.bag is not None

    def add_topic(self, topic: str, msgtype: str, qos: Qos) -> None:
        """A topic to record from now on (also into the running episode)."""
        self.topics[topic] = (msgtype, qos)
        if self.bag is not None:
            self.bag.add_topic(topic, msgtype, [qos])

    def write(self, topic: str, data: bytes) -> None:
        """A serialized message, stamped with the recorder's clock; dropped between episodes."""
        bag = self.bag
        if bag is not None:
            bag.write(topic, data, self.clock_ns())

    def start(self, instruction: str, task: str = "", operator_name: str = "", tags: Sequence[str] = ()) -> Answer:
        if self.meta is not None and self.bag is not None:
            return Answer(
                False, f"episode {self.meta.episode_id} is already recording into {self.meta.bag_path}; stop it first",
                self.meta,
            )  # fmt: skip
        episode_id = time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + "_" + uuid.uuid4().hex[:6]
        path = self.output_dir / episode_id
        meta = EpisodeMeta(
            episode_id, instruction, task, self.embodiment, operator_name, list(tags),
            start_ns=self.clock_ns(), recording=True, bag_path=str(path),
        )  # fmt: skip
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            bag = EpisodeBag(path, self.typestore, flush_period_s=self.flush_period_s, fsync=self.fsync)
        except (RecordingError, OSError) as exc:
            return Answer(False, f"cannot start episode: {exc}")
        bag.add_topic(self.info_topic, EPISODE_INFO_TYPE, [offered_qos(True, True, 1)])
        for topic, (msgtype, qos) in self.topics.items():
            bag.add_topic(topic, msgtype, [qos])
        self.bag, self.meta, self.failed = bag, meta, None
        self._write_meta(bag, meta)
        return Answer(True, f"recording {len(self.topics)} topics into {path}", meta)

    def stop(self, success: bool, notes: str = "", discard: bool = False) -> Answer:
        self.poll()
        if self.bag is None or self.meta is None:
            if self.failed is not None:
                meta, error = self.failed
                self.failed = None
                return Answer(
                    False, f"episode {meta.episode_id} had already stopped: {error}; its bag keeps "
                    f"{meta.message_count} messages up to the last flush", meta,
                )  # fmt: skip
            return Answer(False, "no episode is recording; call start_episode first")
        bag, meta = self.bag, self.meta
        self.bag = None
        meta.recording, meta.success, meta.notes, meta.stop_ns = False, success, notes, self.clock_ns()
        if discard:
            bag.discard()
            meta.bag_path = ""
            return Answer(True, f"episode {meta.episode_id} discarded", meta)
        self._write_meta(bag, meta)
        stats = bag.close({"gen0.episode": meta.to_json()})
        meta.message_count = stats.message_count
        message = stats.error or f"episode {meta.episode_id}: {stats.message_count} messages in {bag.path}"
        return Answer(not stats.error, message, meta, stats.duration_s)

    def poll(self) -> EpisodeMeta | None:
        """If the running episode's bag failed (disk full, ...), stop it now; returns its final metadata."""
        if self.bag is None or not self.bag.error or self.meta is None:
            return None
        bag, meta = self.bag, self.meta
        self.bag = None
        stats = bag.close()
        meta.recording, meta.success, meta.stop_ns = False, False, self.clock_ns()
        meta.notes, meta.message_count = f"recording error: {stats.error}", stats.message_count
        self.failed = (meta, stats.error)
        return meta

    def progress(self) -> EpisodeMeta | None:
        """The running episode's metadata with its current message count (for periodic publishing)."""
        if self.bag is None or self.meta is None or self.bag.error:
            return None
        self.meta.message_count = self.bag.message_count
        return self.meta

    def shutdown(self) -> None:
        """Close a running episode cleanly (the recorder is stopping), keeping everything recorded."""
        if self.bag is not None and self.meta is not None:
            self.stop(False, "recorder shut down during the episode")

    def _write_meta(self, bag: EpisodeBag, meta: EpisodeMeta) -> None:
        meta.message_count = bag.accepted + 1  # queued ones too, and this EpisodeInfo itself: as metadata.yaml
        bag.write(self.info_topic, self.serialize(meta), self.clock_ns())

    def serialize(self, meta: EpisodeMeta) -> bytes:
        """EpisodeMeta -> gen0_msgs/EpisodeInfo CDR bytes (rosbags' exact serializer)."""
        types = self.typestore.types
        Time = types["builtin_interfaces/msg/Time"]

        def stamp(ns: int) -> object:
            sec, nanosec = split_nanoseconds(ns)
            return Time(sec=sec, nanosec=nanosec)

        header = types["std_msgs/msg/Header"](stamp=stamp(self.clock_ns()), frame_id="")
        values = asdict(meta)
        start, stop = values.pop("start_ns"), values.pop("stop_ns")
        msg = types[EPISODE_INFO_TYPE](header=header, start_time=stamp(start), stop_time=stamp(stop), **values)
        return self.typestore.serialize_cdr(msg, EPISODE_INFO_TYPE)


def missing_topics(wanted: Iterable[str], recorder: EpisodeRecorder) -> list[str]:
    return [t for t in wanted if t not in recorder.topics]
