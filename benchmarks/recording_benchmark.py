"""Recording throughput: does the recorder keep up with two 640x480 rgb8 cameras at 30 Hz and joint
states at 500 Hz without dropping anything?

Starts a real publisher process and the real recorder node (FastDDS with config/fastdds.xml, so
images go over shared memory), records one episode through the services, then reads the bag back
with the ``mcap`` package. Every message carries a sequence number, so a drop is a missing number
inside the recorded range, whatever rate the publisher itself managed. Prints JSON.

    .venv/bin/python benchmarks/recording_benchmark.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gen0_policy.bringup import node_command, start_node, stop_nodes
from gen0_policy.paths import config_dir

REPO = Path(__file__).resolve().parent.parent

PUBLISHER = r"""
import json, sys, time, threading, rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
js_hz, cam_hz, cams, w, h = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rclpy.init()
node = Node("bench_publisher")
js_pub = node.create_publisher(JointState, "/joint_states", 100)
img_pubs = [node.create_publisher(Image, f"/cam{i}/image_raw", 10) for i in range(cams)]
names = [f"joint{i}" for i in range(7)]
js = JointState(name=names, position=[0.0] * 7, velocity=[0.0] * 7, effort=[0.0] * 7)
img = Image(height=h, width=w, encoding="rgb8", step=3 * w, data=bytes(range(256)) * (3 * w * h // 256))
counts = {"js": 0, "img": 0}
stop = threading.Event()
def loop():
    start = time.perf_counter()
    next_js, next_img = start, start
    while not stop.is_set():
        now = time.perf_counter()
        if now >= next_js:
            js.position[0] = float(counts["js"]); js.header.stamp = node.get_clock().now().to_msg()
            js_pub.publish(js); counts["js"] += 1; next_js += 1.0 / js_hz
        if now >= next_img:
            img.header.frame_id = str(counts["img"]); img.header.stamp = node.get_clock().now().to_msg()
            for pub in img_pubs:
                pub.publish(img)
            counts["img"] += 1; next_img += 1.0 / cam_hz
        time.sleep(max(0.0, min(next_js, next_img) - time.perf_counter()))
thread = threading.Thread(target=loop, daemon=True)
thread.start()
import signal; signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.is_set():  # publishing needs no executor; the main thread only waits for SIGTERM
    time.sleep(0.05)
thread.join()
print(json.dumps(counts), flush=True)
"""


def call(node, executor, client, request, timeout=30.0):
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"service {client.srv_name} did not appear")
    future = client.call_async(request)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    return future.result()


def read_bag(bag: Path) -> dict[str, list[int]]:
    """Sequence numbers per topic, read with the independent ``mcap`` reader.

    Images are not fully decoded (0.9 MB each): their sequence number is the header's frame_id,
    which CDR places right after the 4-byte encapsulation and the 8-byte stamp.
    """
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    decoder = DecoderFactory()
    seqs: dict[str, list[int]] = {}
    with next(bag.glob("*.mcap")).open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=False):
            if channel.topic == "/joint_states":
                msg = decoder.decoder_for(channel.message_encoding, schema)(message.data)
                seqs.setdefault(channel.topic, []).append(int(msg.position[0]))
            elif channel.topic.endswith("image_raw"):
                size = int.from_bytes(message.data[12:16], "little")
                seqs.setdefault(channel.topic, []).append(int(message.data[16 : 16 + size - 1]))
    return seqs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="episode length, s")
    parser.add_argument("--js-hz", type=float, default=500.0)
    parser.add_argument("--cam-hz", type=float, default=30.0)
    parser.add_argument("--cams", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--executor", choices=("events", "single"), default="events", help="recorder executor")
    parser.add_argument("--out", type=Path, help="keep the bag in this folder (default: a temporary one, deleted)")
    args = parser.parse_args()

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds.xml"))
    os.environ.setdefault("ROS_DOMAIN_ID", os.environ.get("GEN0_DOMAIN_IDS", "42").split("-")[0])
    out = args.out or Path(tempfile.mkdtemp(prefix="gen0_recbench_"))
    topics = ["/joint_states", *[f"/cam{i}/image_raw" for i in range(args.cams)]]
    params = {"output_dir": out, "topics": json.dumps(topics), "flush_period": 0.5, "executor": args.executor}
    recorder = start_node(
        node_command("gen0_policy.ros.recorder_node", config_dir() / "recorder.yaml", params), out / "recorder.log"
    )
    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(args.js_hz), str(args.cam_hz), str(args.cams), str(args.width),
         str(args.height)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from gen0_msgs.srv import StartEpisode, StopEpisode

    rclpy.init()
    node = rclpy.create_node("recording_benchmark")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    start_cli = node.create_client(StartEpisode, "/recorder/start_episode")
    stop_cli = node.create_client(StopEpisode, "/recorder/stop_episode")
    try:
        # wait until the recorder has subscribed to every topic
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            types = dict(node.get_topic_names_and_types())
            subscribed = all(node.count_subscribers(t) > 0 for t in topics if t in types)
            if all(t in types for t in topics) and subscribed:
                break
            executor.spin_once(timeout_sec=0.2)
        time.sleep(1.0)
        started = call(node, executor, start_cli, StartEpisode.Request(instruction="benchmark"))
        cpu0, t0 = cpu_seconds(recorder.pid), time.monotonic()
        time.sleep(args.seconds)
        stopped = call(node, executor, stop_cli, StopEpisode.Request(episode_success=True))
        cpu1, t1 = cpu_seconds(recorder.pid), time.monotonic()
    finally:
        publisher.send_signal(signal.SIGTERM)
        published = json.loads((publisher.communicate(timeout=30)[0] or "{}").strip().splitlines()[-1] or "{}")
        stop_nodes([recorder], grace_s=30)
        if recorder.returncode == -signal.SIGKILL:
            raise RuntimeError(f"the recorder did not stop within 30 s of SIGINT; see {out / 'recorder.log'}")
        node.destroy_node()
        rclpy.shutdown()

    bag = Path(stopped.bag_path)
    seqs = read_bag(bag)
    result = {
        "episode_ok": bool(started.success and stopped.success),
        "seconds": round(stopped.duration, 3),
        "config": {
            "js_hz": args.js_hz,
            "cam_hz": args.cam_hz,
            "cams": args.cams,
            "size": f"{args.width}x{args.height}",
        },
        "fastdds_profile": os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"],
        "executor": args.executor,
        "published_total": published,
        "topics": {},
        "bag_mb": round(sum(f.stat().st_size for f in bag.iterdir()) / 2**20, 1),
        "recorder_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
    }
    dropped = 0
    for topic in topics:
        seq = sorted(seqs.get(topic, []))
        missing = (seq[-1] - seq[0] + 1 - len(set(seq))) if seq else 0
        dropped += missing
        result["topics"][topic] = {
            "recorded": len(seq),
            "rate_hz": round(len(seq) / max(stopped.duration, 1e-9), 1),
            "dropped": missing,
        }
    result["dropped_total"] = dropped
    result["write_mb_per_s"] = round(result["bag_mb"] / max(stopped.duration, 1e-9), 1)
    result["load_average_1min"] = os.getloadavg()[0]  # this machine is shared: read drops in its light
    print(json.dumps(result, indent=2))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
