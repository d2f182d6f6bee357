"""Recorder node: StartEpisode/StopEpisode services, one rosbag2 (MCAP) bag per episode.

Subscriptions are raw (serialized CDR bytes go into the bag untouched) and are created as soon as
a configured topic's type appears in the graph, then kept across episodes so an episode's first
messages are never lost to discovery. The bag itself (writer thread, chunk flushing, disk errors)
is :class:`gen0_policy.data.recording.EpisodeBag`.
"""

from __future__ import annotations

import importlib
import json
import signal
import time
import uuid
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

from gen0_msgs.msg import EpisodeInfo
from gen0_msgs.srv import StartEpisode, StopEpisode
from gen0_policy.data.recording import EpisodeBag, RecordingError, offered_qos, typestore_for

EPISODE_INFO_TYPE = "gen0_msgs/msg/EpisodeInfo"


def _message_class(msgtype: str) -> type:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.output_dir = Path(self.declare_parameter("output_dir", "~/gen0_bags").value).expanduser()
        self.topics: list[str] = list(self.declare_parameter("topics", ["/joint_states"]).value)
        self.embodiment = self.declare_parameter("embodiment", "").value
        self.info_topic = self.declare_parameter("episode_info_topic", "/episode_info").value
        self.flush_period = float(self.declare_parameter("flush_period", 0.5).value)
        self.fsync = bool(self.declare_parameter("fsync", False).value)
        self.qos_depth = int(self.declare_parameter("qos_depth", 1000).value)
        discovery_period = float(self.declare_parameter("discovery_period", 0.2).value)

        self.typestore = typestore_for([EPISODE_INFO_TYPE])
        self.known: dict[str, tuple[str, object]] = {}  # topic -> (msgtype, rosbags Qos offered)
        self.subs: list = []
        self.bag: EpisodeBag | None = None
        self.info: EpisodeInfo | None = None
        self.failed: tuple[EpisodeInfo, str] | None = None  # an episode the recorder had to stop itself

        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.info_pub = self.create_publisher(EpisodeInfo, self.info_topic, latched)
        self.create_service(StartEpisode, "~/start_episode", self.start)
        self.create_service(StopEpisode, "~/stop_episode", self.stop)
        self.create_timer(discovery_period, self.discover)
        self.create_timer(1.0, self.publish_progress)
        self.discover()
        self.get_logger().info(f"recording {self.topics} into {self.output_dir}")

    # -- topics ---------------------------------------------------------------------------------
    def discover(self) -> None:
        """Subscribe to configured topics whose type is now known; add them to a running episode."""
        if self.bag is not None and self.bag.error:
            self.finish_failed()
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.known or topic not in types:
                continue
            msgtype = types[topic][0]
            pubs = self.get_publishers_info_by_topic(topic)
            reliable = all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
            latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
            qos = QoSProfile(
                depth=self.qos_depth,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            )
            try:
                cls = _message_class(msgtype)
            except (ImportError, AttributeError) as exc:
                self.get_logger().error(f"cannot record {topic}: message type {msgtype} not importable ({exc})")
                self.known[topic] = (msgtype, None)
                continue
            self.subs.append(self.create_subscription(cls, topic, self._callback(topic), qos, raw=True))
            self.known[topic] = (msgtype, offered_qos(reliable, latched, self.qos_depth))
            if self.bag is not None:
                self._add_to_bag(topic)
            self.get_logger().info(f"subscribed to {topic} [{msgtype}]")

    def _callback(self, topic: str):
        def on_message(data: bytes) -> None:
            bag = self.bag
            if bag is not None:
                bag.write(topic, data, self.get_clock().now().nanoseconds)

        return on_message

    def _add_to_bag(self, topic: str) -> None:
        msgtype, qos = self.known[topic]
        if qos is not None and self.bag is not None:
            self.bag.add_topic(topic, msgtype, [qos])

    # -- services -------------------------------------------------------------------------------
    def start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        if self.bag is not None:
            response.success = False
            response.message = (
                f"episode {self.info.episode_id} is already recording into {self.info.bag_path}; stop it first"
            )
            response.episode_id, response.bag_path = self.info.episode_id, self.info.bag_path
            return response
        now = self.get_clock().now()
        episode_id = time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + "_" + uuid.uuid4().hex[:6]
        path = self.output_dir / episode_id
        info = EpisodeInfo(
            episode_id=episode_id,
            instruction=request.instruction,
            task=request.task,
            embodiment=self.embodiment,
            operator_name=request.operator_name,
            tags=list(request.tags),
            start_time=now.to_msg(),
            recording=True,
            bag_path=str(path),
        )
        info.header.stamp = now.to_msg()
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            bag = EpisodeBag(path, self.typestore, flush_period_s=self.flush_period, fsync=self.fsync)
            bag.add_topic(self.info_topic, EPISODE_INFO_TYPE, [offered_qos(True, True, 1)])
            self.bag, self.info, self.failed = bag, info, None
            for topic in self.known:
                self._add_to_bag(topic)
            self._write_info()
        except (RecordingError, OSError) as exc:
            self.bag = None
            response.success, response.message = False, f"cannot start episode: {exc}"
            return response
        missing = [t for t in self.topics if t not in self.known]
        response.success, response.episode_id, response.bag_path = True, episode_id, str(path)
        response.message = f"recording {len(self.known)} topics into {path}" + (
            f"; not seen yet (recorded once they appear): {missing}" if missing else ""
        )
        self.get_logger().info(response.message)
        return response

    def stop(self, request: StopEpisode.Request, response: StopEpisode.Response) -> StopEpisode.Response:
        if self.bag is not None and self.bag.error:
            self.finish_failed()
        if self.bag is None:
            response.success = False
            if self.failed is not None:
                info, error = self.failed
                self.failed = None
                response.bag_path, response.message_count = info.bag_path, info.message_count
                response.message = (
                    f"episode {info.episode_id} had already stopped: {error}; its bag keeps "
                    f"{info.message_count} messages up to the last flush"
                )
            else:
                response.message = "no episode is recording; call start_episode first"
            return response
        bag, info = self.bag, self.info
        self.bag = None
        info.recording, info.success, info.notes = False, request.episode_success, request.notes
        info.stop_time = self.get_clock().now().to_msg()
        if request.discard:
            bag.discard()
            info.bag_path = ""
            response.success, response.message = True, f"episode {info.episode_id} discarded"
        else:
            self._write_info(bag)
            stats = bag.close({"gen0.episode": self._info_json(info)})
            info.message_count = stats.message_count
            response.success = not stats.error
            response.bag_path, response.message_count, response.duration = (
                str(bag.path),
                stats.message_count,
                stats.duration_s,
            )
            response.message = stats.error or f"episode {info.episode_id}: {stats.message_count} messages in {bag.path}"
        self.info_pub.publish(info)
        self.get_logger().info(response.message)
        return response

    # -- episode info ---------------------------------------------------------------------------
    def _write_info(self, bag: EpisodeBag | None = None) -> None:
        bag = bag or self.bag
        self.info.header.stamp = self.get_clock().now().to_msg()
        self.info.message_count = bag.message_count
        bag.write(self.info_topic, serialize_message(self.info), self.get_clock().now().nanoseconds)
        self.info_pub.publish(self.info)

    @staticmethod
    def _info_json(info: EpisodeInfo) -> str:
        return json.dumps(
            {
                "episode_id": info.episode_id,
                "instruction": info.instruction,
                "task": info.task,
                "embodiment": info.embodiment,
                "operator_name": info.operator_name,
                "tags": list(info.tags),
                "success": info.success,
                "notes": info.notes,
            }
        )

    def publish_progress(self) -> None:
        if self.bag is not None and not self.bag.error:
            self.info.message_count = self.bag.message_count
            self.info.header.stamp = self.get_clock().now().to_msg()
            self.info_pub.publish(self.info)

    def finish_failed(self) -> None:
        """The bag failed (disk full, ...): stop the episode now, keep what was flushed, say why."""
        bag, info = self.bag, self.info
        self.bag = None
        stats = bag.close()
        info.recording, info.success = False, False
        info.notes = f"recording error: {stats.error}"
        info.stop_time, info.message_count = self.get_clock().now().to_msg(), stats.message_count
        self.failed = (info, stats.error)
        self.info_pub.publish(info)
        self.get_logger().error(f"episode {info.episode_id} stopped: {stats.error}")

    def shutdown(self) -> None:
        if self.bag is not None:
            self.info.recording, self.info.notes = False, "recorder shut down during the episode"
            self._write_info()
            self.bag.close({"gen0.episode": self._info_json(self.info)})
            self.bag = None


def main(args: list[str] | None = None) -> None:
    # A file-size limit (ulimit -f) must fail the write, not kill the recorder: the bag is then closed cleanly.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    rclpy.init(args=args)
    node = RecorderNode()
    # The events executor (C++) takes a message to its callback several times faster than the
    # default one: at 500 Hz joint states plus cameras that is the difference between keeping up or not.
    kind = node.declare_parameter("executor", "events").value
    executor = EventsExecutor() if kind == "events" else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while rclpy.ok():  # not spin(): the events executor's spin() does not return on Ctrl-C
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
