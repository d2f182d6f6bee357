"""Recorder node in a real process, fed by a real publisher process, bags read back with ``mcap``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mcap.exceptions import EndOfFile
from mcap.reader import NonSeekingReader
from mcap_ros2.decoder import DecoderFactory

from conftest import wait_until
from discovery import first_answer

pytestmark = pytest.mark.ros

BIN = Path(sys.executable).parent  # console scripts of the venv running the tests
REPO = Path(__file__).resolve().parent.parent
TOPICS = ["/joint_states", "/camera/scene/image_raw", "/cmd"]

# Publishes numbered messages: JointState position[0] = sequence number, so gaps are visible.
PUBLISHER = r"""
import sys, rclpy, numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
js_hz, img_hz, w, h = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rclpy.init()
node = Node("test_publisher")
js_pub = node.create_publisher(JointState, "/joint_states", 1000)
img_pub = node.create_publisher(Image, "/camera/scene/image_raw", 10)
cmd_pub = node.create_publisher(JointTrajectory, "/cmd", 10)
seq = {"js": 0, "img": 0}
pixels = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8).tobytes()
def js():
    msg = JointState(name=["a", "b"], position=[float(seq["js"]), 0.5])
    msg.header.stamp = node.get_clock().now().to_msg()
    js_pub.publish(msg); seq["js"] += 1
    if seq["js"] % 10 == 0:
        cmd_pub.publish(JointTrajectory(joint_names=["a", "b"], points=[JointTrajectoryPoint(positions=[1.0, 2.0])]))
def img():
    msg = Image(height=h, width=w, encoding="rgb8", step=3 * w, data=pixels)
    msg.header.frame_id = str(seq["img"]); img_pub.publish(msg); seq["img"] += 1
node.create_timer(1.0 / js_hz, js)
node.create_timer(1.0 / img_hz, img)
rclpy.spin(node)
"""


def start_publisher(processes, js_hz=200, img_hz=15, width=64, height=48):
    return processes.python("-c", PUBLISHER, str(js_hz), str(img_hz), str(width), str(height), name="publisher")


def start_recorder(processes, tmp_path: Path, output_dir: Path, **params):
    values = {
        "output_dir": str(output_dir),
        "topics": TOPICS,
        "embodiment": "toy",
        "flush_period": 0.2,
        **params,
    }
    config = tmp_path / "recorder.yaml"
    config.write_text(yaml.safe_dump({"recorder": {"ros__parameters": values}}))
    return processes.start(str(BIN / "gen0_recorder_node"), "--ros-args", "--params-file", str(config), name="recorder")


class Client:
    """Service client living in the test process (real rclpy, own context)."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile

        from gen0_msgs.msg import EpisodeInfo
        from gen0_msgs.srv import StartEpisode, StopEpisode

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("recorder_test_client", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        # The stop client is created last: see warm_up.
        self.start_cli = self.node.create_client(StartEpisode, "/recorder/start_episode")
        self.stop_cli = self.node.create_client(StopEpisode, "/recorder/stop_episode")
        self.warm = False
        self.StartEpisode, self.StopEpisode = StartEpisode, StopEpisode
        self.infos: list = []
        latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(EpisodeInfo, "/episode_info", self.infos.append, latched)

    def warm_up(self) -> None:
        """Ask to stop (harmless before any start) until answered (discovery.py): the stop client,
        created last, then covers the start client too; a CI run lost a start's answer without it."""
        wait_until(lambda: self.stop_cli.wait_for_service(timeout_sec=0.1), 20.0, what="service /recorder/stop_episode")
        answer = first_answer(
            lambda: self.stop_cli.call_async(self.StopEpisode.Request()),
            self.stop_cli.srv_name,
            wait=lambda future, timeout: self.executor.spin_until_future_complete(future, timeout_sec=timeout),
        )
        assert "no episode is recording" in answer.message, answer.message
        self.warm = True

    def call(self, client, request, timeout: float = 20.0):
        if not self.warm:
            self.warm_up()
        wait_until(lambda: client.wait_for_service(timeout_sec=0.1), timeout, what=f"service {client.srv_name}")
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f"no answer from {client.srv_name}"
        return future.result()

    def start(self, instruction: str = "pick the cube", **kw):
        return self.call(self.start_cli, self.StartEpisode.Request(instruction=instruction, task="pick", **kw))

    def stop(self, **kw):
        return self.call(self.stop_cli, self.StopEpisode.Request(**kw))

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.context)


@pytest.fixture
def client():
    c = Client()
    yield c
    c.close()


def read_mcap(path: Path) -> list[tuple[str, int, object]]:
    """Every message an independent reader can decode, up to a truncated end (a crashed recorder)."""
    messages = []
    with path.open("rb") as f:
        try:
            reader = NonSeekingReader(f, decoder_factories=[DecoderFactory()])
            # File order: sorting by time would read to the (missing) end before yielding anything.
            for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
                messages.append((channel.topic, message.log_time, decoded))
        except EndOfFile:
            pass
    return messages


def joint_sequence(messages) -> list[int]:
    return [int(m.position[0]) for topic, _, m in messages if topic == "/joint_states"]


def wait_recording(client: Client, seconds: float) -> None:
    client.spin(seconds)


def test_episode_round_trip_and_service_answers(processes, tmp_path: Path, client: Client) -> None:
    start_publisher(processes)
    start_recorder(processes, tmp_path, tmp_path / "bags")
    answer = client.stop()
    assert not answer.success and "no episode is recording" in answer.message

    # Wait until the recorder has subscribed to every publisher, so the episode holds all topics.
    wait_until(lambda: "subscribed to /cmd" in processes.output(processes.procs[1][0]), what="recorder subscribed")
    started = client.start(operator_name="ada", tags=["test"])
    assert started.success, started.message
    assert Path(started.bag_path).parent == tmp_path / "bags"
    again = client.start()
    assert not again.success and "already recording" in again.message and started.episode_id in again.message
    client.spin(1.5)
    stopped = client.stop(episode_success=True, notes="clean grasp")
    assert stopped.success, stopped.message
    # at least what a starved publisher manages in 1.5 s; that nothing published was dropped is checked below
    assert stopped.bag_path == started.bag_path and stopped.message_count > 100 and 1.0 < stopped.duration < 3.0

    bag = Path(stopped.bag_path)
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap" and meta["version"] == 9 and meta["ros_distro"] == "jazzy"
    assert meta["message_count"] == stopped.message_count
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in meta["topics_with_message_count"]}
    assert types == {
        "/episode_info": "gen0_msgs/msg/EpisodeInfo",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/camera/scene/image_raw": "sensor_msgs/msg/Image",
        "/cmd": "trajectory_msgs/msg/JointTrajectory",
    }

    messages = read_mcap(bag / meta["relative_file_paths"][0])
    assert len(messages) == stopped.message_count
    seq = joint_sequence(messages)
    assert seq == list(range(seq[0], seq[0] + len(seq))), "joint states were dropped"
    images = [m for topic, _, m in messages if topic == "/camera/scene/image_raw"]
    assert images and (images[0].width, images[0].height, images[0].encoding) == (64, 48, "rgb8")
    infos = [m for topic, _, m in messages if topic == "/episode_info"]
    assert infos[0].recording and infos[0].instruction == "pick the cube" and infos[0].operator_name == "ada"
    assert not infos[-1].recording and infos[-1].success and infos[-1].notes == "clean grasp"
    assert infos[-1].embodiment == "toy" and list(infos[-1].tags) == ["test"]
    assert '"success": true' in meta["custom_data"]["gen0.episode"]

    # EpisodeInfo is also published: the latched last one says the episode stopped.
    wait_until(
        lambda: client.spin(0.1) or any(not i.recording and i.episode_id == started.episode_id for i in client.infos),
        what="final EpisodeInfo",
    )

    # A discarded episode leaves nothing behind.
    second = client.start(instruction="push")
    assert second.success
    client.spin(0.3)
    discarded = client.stop(discard=True)
    assert discarded.success and discarded.bag_path == ""
    assert not Path(second.bag_path).exists()


def test_sigkill_leaves_flushed_chunks_readable(processes, tmp_path: Path, client: Client) -> None:
    start_publisher(processes)
    recorder = start_recorder(processes, tmp_path, tmp_path / "bags")
    wait_until(lambda: "subscribed to /cmd" in processes.output(recorder), what="recorder subscribed")
    started = client.start()
    assert started.success
    client.spin(3.0)
    os.killpg(recorder.pid, signal.SIGKILL)
    recorder.wait(timeout=10)

    bag = Path(started.bag_path)
    assert not (bag / "metadata.yaml").exists()  # killed: no summary, no metadata
    messages = read_mcap(next(bag.glob("*.mcap")))
    seq = joint_sequence(messages)
    # 3 s at 200 Hz (600) minus at most one flush period (0.2 s) and start-up slack on a loaded machine
    assert len(seq) > 200, f"only {len(seq)} joint states survived"
    assert seq == list(range(seq[0], seq[0] + len(seq)))
    assert messages[0][0] == "/episode_info" and messages[0][2].recording
    assert any(topic == "/camera/scene/image_raw" for topic, _, _ in messages)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MB filesystem (tmpfs when we may mount, else a file-size limit on the recorder)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() == 0 and shutil.which("mount"):
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
        if done.returncode == 0:
            yield mount, "disk full"
            subprocess.run(["umount", "-l", str(mount)], check=False)
            return
    yield mount, "file size limit"


def test_full_disk_stops_episode_with_error(processes, tmp_path: Path, client: Client, small_disk) -> None:
    output, expected = small_disk
    start_publisher(processes, js_hz=100, img_hz=30, width=320, height=240)  # ~7 MB/s of images
    if expected == "file size limit":  # no mount: limit the recorder's files to 3 MB instead
        recorder = processes.start(
            "prlimit",
            "--fsize=3000000",
            str(BIN / "gen0_recorder_node"),
            "--ros-args",
            "-p",
            f"output_dir:={output}",
            "-p",
            f"topics:={TOPICS}",
            "-p",
            "flush_period:=0.2",
            "-p",
            "embodiment:=toy",
            name="recorder",
        )
    else:
        recorder = start_recorder(processes, tmp_path, output)
    wait_until(lambda: "subscribed to /cmd" in processes.output(recorder), what="recorder subscribed")
    started = client.start()
    assert started.success, started.message
    wait_until(
        lambda: client.spin(0.1) or any(i.notes.startswith("recording error") for i in client.infos),
        timeout=20,
        what="the recorder to stop the episode on a full disk",
    )
    stopped = client.stop()
    assert not stopped.success and expected in stopped.message and "already stopped" in stopped.message
    assert recorder.poll() is None, "the recorder must survive a full disk"
    messages = read_mcap(next(Path(started.bag_path).glob("*.mcap")))
    seq = joint_sequence(messages)
    assert len(seq) > 10 and seq == list(range(seq[0], seq[0] + len(seq)))
    # The next stop has nothing left to report.
    assert "no episode is recording" in client.stop().message


BEST_EFFORT_CAMERA = r"""
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("best_effort_camera")
pub = node.create_publisher(Image, "/camera/scene/image_raw", qos_profile_sensor_data)
count = [0]
def send():
    pub.publish(Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)))
node.create_timer(0.02, send)
rclpy.spin(node)
"""


def test_qos_follows_the_discovered_publishers_and_is_rechosen_when_they_change(processes, tmp_path, client) -> None:
    """Issue 13 (6): the recorder chose RELIABLE for a topic whose publishers were not discovered yet
    (or were all reliable) and kept it, so a best-effort camera was never recorded."""
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import Image

    reliable = client.node.create_publisher(Image, "/camera/scene/image_raw", QoSProfile(depth=10))
    config = tmp_path / "recorder.yaml"
    values = {"output_dir": str(tmp_path / "bags"), "topics": ["/camera/scene/image_raw"], "flush_period": 0.2}
    values["embodiment"] = "panda"
    config.write_text(yaml.safe_dump({"recorder": {"ros__parameters": values}}))
    recorder = processes.python(
        "-m", "gen0_policy.ros.recorder_node", "--ros-args", "--params-file", str(config), name="recorder"
    )
    wait_until(lambda: "subscribed to /camera/scene/image_raw" in processes.output(recorder), 30, what="subscription")
    client.node.destroy_publisher(reliable)
    processes.python("-c", BEST_EFFORT_CAMERA, name="camera")
    with contextlib.suppress(AssertionError):  # judged by what is recorded below, not by the log
        wait_until(lambda: "(best effort, from 1 publisher(s))" in processes.output(recorder), 10, what="re-chosen")
    assert client.start().success
    wait_recording(client, 1.5)
    stopped = client.stop(episode_success=True)
    images = [m for topic, _, m in read_mcap(next(Path(stopped.bag_path).glob("*.mcap"))) if topic.endswith("raw")]
    assert len(images) > 10, processes.output(recorder)


def test_the_embodiment_parameter_is_required_in_one_line(processes) -> None:
    """Issue 17: without it every episode said embodiment '' and `gen0 data build` failed much later."""
    recorder = processes.start(str(BIN / "gen0_recorder_node"), name="recorder")
    assert recorder.wait(timeout=60) == 2
    out = processes.output(recorder).strip().splitlines()
    assert out[-1].startswith("gen0_recorder_node: parameter embodiment is required") and "'panda'" in out[-1]
