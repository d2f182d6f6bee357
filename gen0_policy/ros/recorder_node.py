"""Recorder node: StartEpisode/StopEpisode services, one rosbag2 (MCAP) bag per episode.

Subscriptions are raw (serialized CDR bytes go into the bag untouched) and are created as soon as
a configured topic's type appears in the graph, then kept across episodes so an episode's first
messages are never lost to discovery. Episode rules and bags live in
:class:`gen0_policy.data.episode_recorder.EpisodeRecorder`; this node converts messages.
"""

from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from gen0_msgs.msg import EpisodeInfo
from gen0_msgs.srv import StartEpisode, StopEpisode
from gen0_policy.data.episode_recorder import EpisodeMeta, EpisodeRecorder, missing_topics
from gen0_policy.data.recording import offered_qos, subscription_qos
from gen0_policy.embodiment import available_embodiments
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.ros.qos import REQUESTS
from gen0_policy.ros.spin import init, spin

LATCHED = DurabilityPolicy.TRANSIENT_LOCAL


def _message_class(msgtype: str) -> type:
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def _time(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        p = {
            name: self.declare_parameter(name, default).value
            for name, default in [
                ("output_dir", "~/gen0_bags"),
                ("topics", ["/joint_states"]),
                ("embodiment", ""),
                ("episode_info_topic", "/episode_info"),
                ("flush_period", 0.5),  # s
                ("fsync", False),
                ("qos_depth", 1000),
                ("discovery_period", 0.2),  # s
            ]
        }
        if not p["embodiment"]:
            raise ConfigError(
                "parameter embodiment is required: the robot whose joints are recorded, written into every "
                f"episode (-p embodiment:=NAME; config/embodiments has {available_embodiments()})"
            )
        if p["embodiment"] not in available_embodiments():
            self.get_logger().warn(
                f"embodiment {p['embodiment']!r} is not in config/embodiments {available_embodiments()}; "
                "`gen0 data build` will need its YAML there"
            )
        self.topics, self.qos_depth = list(p["topics"]), int(p["qos_depth"])
        self.recorder = EpisodeRecorder(
            Path(p["output_dir"]),
            embodiment=p["embodiment"],
            info_topic=p["episode_info_topic"],
            flush_period_s=float(p["flush_period"]),
            fsync=bool(p["fsync"]),
            clock_ns=lambda: self.get_clock().now().nanoseconds,
        )
        self.subs: dict[str, object] = {}
        self.chosen_qos: dict[str, tuple[bool, bool]] = {}  # topic -> (reliable, transient local) subscribed with
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.info_pub = self.create_publisher(EpisodeInfo, p["episode_info_topic"], latched)
        self.create_service(StartEpisode, "~/start_episode", self.start, qos_profile=REQUESTS)
        self.create_service(StopEpisode, "~/stop_episode", self.stop, qos_profile=REQUESTS)
        self.create_timer(float(p["discovery_period"]), self.discover)
        self.create_timer(1.0, lambda: self.publish(self.recorder.progress()))
        self.discover()
        self.get_logger().info(f"recording {self.topics} into {self.recorder.output_dir}")

    def discover(self) -> None:
        """Subscribe to configured topics whose type is now known; stop an episode whose bag failed."""
        failed = self.recorder.poll()
        if failed is not None:
            self.get_logger().error(f"episode {failed.episode_id} stopped: {failed.notes}")
            self.publish(failed)
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if self.subs.get(topic, 0) is None or topic not in types:
                continue  # not importable (said once), or not in the graph yet
            pubs = self.get_publishers_info_by_topic(topic)
            chosen = subscription_qos(
                (p.qos_profile.reliability == ReliabilityPolicy.RELIABLE, p.qos_profile.durability == LATCHED)
                for p in pubs
            )
            if chosen is None or chosen == self.chosen_qos.get(topic):
                continue  # no publisher to choose for (keep what we have), or nothing changed
            msgtype = types[topic][0]
            try:
                cls = _message_class(msgtype)
            except (ImportError, AttributeError) as exc:
                self.get_logger().error(f"cannot record {topic}: message type {msgtype} not importable ({exc})")
                self.subs[topic] = None
                continue
            reliable, latched = chosen
            qos = QoSProfile(
                depth=self.qos_depth,
                reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                durability=LATCHED if latched else DurabilityPolicy.VOLATILE,
            )
            if topic in self.subs:  # the publishers changed: a subscription they cannot all serve goes
                self.destroy_subscription(self.subs.pop(topic))
            self.recorder.add_topic(topic, msgtype, offered_qos(reliable, latched, self.qos_depth))
            callback = lambda data, t=topic: self.recorder.write(t, data)  # noqa: E731 - binds the topic
            self.subs[topic] = self.create_subscription(cls, topic, callback, qos, raw=True)
            self.chosen_qos[topic] = chosen
            kind = ("reliable" if reliable else "best effort") + (", transient local" if latched else "")
            self.get_logger().info(f"subscribed to {topic} [{msgtype}] ({kind}, from {len(pubs)} publisher(s))")

    def start(self, request: StartEpisode.Request, response: StartEpisode.Response) -> StartEpisode.Response:
        answer = self.recorder.start(request.instruction, request.task, request.operator_name, list(request.tags))
        missing = missing_topics(self.topics, self.recorder)
        response.success, response.message = answer.success, answer.message
        if answer.success and missing:
            response.message += f"; not seen yet (recorded once they appear): {missing}"
        if answer.meta is not None:
            response.episode_id, response.bag_path = answer.meta.episode_id, answer.meta.bag_path
            self.publish(answer.meta)
        self.get_logger().info(response.message)
        return response

    def stop(self, request: StopEpisode.Request, response: StopEpisode.Response) -> StopEpisode.Response:
        answer = self.recorder.stop(request.episode_success, request.notes, request.discard)
        response.success, response.message, response.duration = answer.success, answer.message, answer.duration_s
        if answer.meta is not None:
            response.bag_path, response.message_count = answer.meta.bag_path, answer.meta.message_count
            self.publish(answer.meta)
        self.get_logger().info(response.message)
        return response

    def publish(self, meta: EpisodeMeta | None) -> None:
        if meta is None:
            return
        info = EpisodeInfo(
            episode_id=meta.episode_id, instruction=meta.instruction, task=meta.task, embodiment=meta.embodiment,
            operator_name=meta.operator_name, tags=meta.tags, start_time=_time(meta.start_ns),
            stop_time=_time(meta.stop_ns), recording=meta.recording, success=meta.success, notes=meta.notes,
            bag_path=meta.bag_path, message_count=meta.message_count,
        )  # fmt: skip
        info.header.stamp = self.get_clock().now().to_msg()
        self.info_pub.publish(info)


def main(args: list[str] | None = None) -> None:
    # A file-size limit (ulimit -f) must fail the write, not kill the recorder: the bag is then closed cleanly.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    init(args)
    try:
        node = RecorderNode()
    except Gen0Error as exc:  # a setting to fix: one line, no traceback
        print(f"gen0_recorder_node: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    # The events executor (C++) takes a message to its callback with much less CPU than the default
    # one: at 500 Hz joint states plus cameras that is the difference between keeping up or not.
    kind = node.declare_parameter("executor", "events").value
    executor = EventsExecutor() if kind == "events" else SingleThreadedExecutor()
    try:
        spin(node, executor)
    finally:
        node.recorder.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
