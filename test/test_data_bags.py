"""Bags -> datasets: bags written here with real ROS messages (rclpy serialization, rosbags Writer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from conftest import wait_until
from gen0_msgs.msg import EpisodeInfo
from gen0_policy.cli import main as gen0
from gen0_policy.data.bags import BuildConfig, find_bags, read_bag
from gen0_policy.data.build import build_dataset
from gen0_policy.data.lerobot import LeRobotDataset
from gen0_policy.data.recording import EpisodeBag, repair_bag, typestore_for
from gen0_policy.data.stats import load_stats
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import DatasetError, EmbodimentError

PANDA = load_embodiment("panda")
ARM = list(PANDA.controller("joint_trajectory_controller").joints)
T0 = 1_700_000_000.0  # s, wall-clock-like log times
W, H = 32, 24


def joint_value(j: int, t: float) -> float:
    return PANDA.home[j] + 0.1 * np.sin(2.0 * t + j)


def command_value(j: int, t: float) -> float:
    return PANDA.home[j] + 0.2 * np.cos(t + j)


def write_bag(
    path: Path,
    *,
    duration: float = 2.0,
    success: bool = True,
    instruction: str = "pick up the red cube",
    js_names: list[str] | None = None,
    nan_at: float | None = None,
    skip_frames: tuple[int, ...] = (),
    commands: bool = True,
    finish: bool = True,
    crash_at: float | None = None,
    truncated_frame: int | None = None,
) -> dict:
    """A recorder-like episode bag; returns the exact message times for the test's own expectations."""
    topics = {
        "/episode_info": "gen0_msgs/msg/EpisodeInfo",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/scene/image_raw": "sensor_msgs/msg/Image",
        "/wrist/image_raw": "sensor_msgs/msg/Image",
        "/joint_trajectory_controller/joint_trajectory": "trajectory_msgs/msg/JointTrajectory",
        "/gripper_controller/commands": "std_msgs/msg/Float64MultiArray",
    }
    events: list[tuple[float, str, object]] = []
    info = EpisodeInfo(episode_id=path.name, instruction=instruction, task="pick", embodiment="panda", recording=True)
    events.append((T0, "/episode_info", info))
    names = js_names or list(reversed(PANDA.joint_names))  # any order: matched by name
    js_times = T0 + 0.001 + np.arange(int(duration * 100)) / 100
    for t in js_times:
        values = [joint_value(PANDA.joint_names.index(n), t - T0) if n in PANDA.joint_names else 0.0 for n in names]
        if nan_at is not None and abs(t - T0 - nan_at) < 0.005:
            values[0] = float("nan")
        events.append((t, "/joint_states", JointState(name=names, position=values)))
    frame_times = T0 + 0.005 + np.arange(int(duration * 30)) / 30
    for i, t in enumerate(frame_times):
        if i in skip_frames:
            continue
        rgb = np.full((H, W, 3), (i * 7) % 256, np.uint8)
        scene = Image(height=H, width=W, encoding="rgb8", step=3 * W, data=rgb.tobytes())
        padded = np.zeros((H, 3 * W + 4), np.uint8)  # rows padded to 100 bytes, as some drivers do
        padded[:, : 3 * W] = rgb[:, :, ::-1].reshape(H, 3 * W)
        data = padded.tobytes()[: -(3 * W + 4)] if i == truncated_frame else padded.tobytes()  # a row short
        wrist = Image(height=H, width=W, encoding="bgr8", step=3 * W + 4, data=data)
        events += [(t, "/scene/image_raw", scene), (t, "/wrist/image_raw", wrist)]
    cmd_times = T0 + 0.002 + np.arange(int(duration * 10)) / 10
    for t in cmd_times if commands else []:
        point = JointTrajectoryPoint(positions=[command_value(PANDA.joint_names.index(n), t - T0) for n in ARM])
        events.append(
            (t, "/joint_trajectory_controller/joint_trajectory", JointTrajectory(joint_names=ARM, points=[point]))
        )
        events.append((t, "/gripper_controller/commands", Float64MultiArray(data=[0.01 + 0.01 * (t - T0)])))
    if finish:
        done = EpisodeInfo(
            episode_id=path.name,
            instruction=instruction,
            task="pick",
            embodiment="panda",
            recording=False,
            success=success,
        )
        events.append((T0 + duration, "/episode_info", done))
    events.sort(key=lambda e: e[0])
    if crash_at is None:
        store = typestore_for(["gen0_msgs/msg/EpisodeInfo"])
        writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        conns = {topic: writer.add_connection(topic, msgtype, typestore=store) for topic, msgtype in topics.items()}
        for t, topic, msg in events:
            writer.write(conns[topic], round(t * 1e9), serialize_message(msg))
        writer.close()
    else:  # the recorder's own bag writer, copied as a SIGKILL would leave it after `crash_at` of the messages
        bag = EpisodeBag(path, typestore_for(["gen0_msgs/msg/EpisodeInfo"]), flush_period_s=60)
        for topic, msgtype in topics.items():
            bag.add_topic(topic, msgtype)
        for i, (t, topic, msg) in enumerate(events):
            bag.write(topic, serialize_message(msg), round(t * 1e9))
            if i % 50 == 0 or i == int(len(events) * crash_at):
                wait_until(lambda i=i: bag.message_count == i + 1, 10, 0.001, "the bag writer")
                bag.flush()
            if i == int(len(events) * crash_at):
                crashed = path.with_name(path.name + "_crashed")
                crashed.mkdir()
                shutil.copy(path / f"{path.name}.mcap", crashed / f"{crashed.name}.mcap")
        bag.close()
    kept = [t for i, t in enumerate(frame_times) if i not in skip_frames]
    return {
        "js": js_times,
        "frames": np.array(kept),
        "frame_ids": [i for i in range(len(frame_times)) if i not in skip_frames],
        "cmds": cmd_times,
    }


def expected_steps(times: dict, fps: float) -> np.ndarray:
    start = max(times["js"][0], times["frames"][0], times["cmds"][0])
    end = min(times["js"][-1], times["frames"][-1])
    n = int(np.floor((end - start) * fps + 1e-9)) + 1
    return start + np.arange(n) / fps


def latest(times: np.ndarray, t: float) -> int:
    return max(i for i, s in enumerate(times) if s <= t + 1e-12)


def test_read_bag_resamples_states_actions_and_frames(tmp_path: Path) -> None:
    times = write_bag(tmp_path / "ep0")
    episode, quality = read_bag(tmp_path / "ep0", BuildConfig(fps=20))
    steps = expected_steps(times, 20)
    assert len(episode) == len(steps) and quality.ok and quality.steps == len(steps)
    assert episode.instruction == "pick up the red cube" and episode.success and episode.task == "pick"
    for k, t in enumerate(steps):
        js = times["js"][latest(times["js"], t)]
        want_state = [joint_value(j, js - T0) for j in range(PANDA.dof)]
        np.testing.assert_allclose(episode.states[k], want_state, atol=1e-6)
        cmd = times["cmds"][latest(times["cmds"], t)]
        np.testing.assert_allclose(episode.actions[k, :7], [command_value(j, cmd - T0) for j in range(7)], atol=1e-6)
        assert episode.actions[k, 7] == pytest.approx(0.01 + 0.01 * (cmd - T0), abs=1e-6)
        frame = times["frame_ids"][latest(times["frames"], t)]
        assert np.all(episode.images["scene"][k] == (frame * 7) % 256)
        assert np.all(episode.images["wrist"][k] == (frame * 7) % 256), "bgr8 with row padding decoded to RGB"
    assert {s.topic for s in quality.streams} >= {"/joint_states", "/scene/image_raw"}
    js_stream = next(s for s in quality.streams if s.topic == "/joint_states")
    assert js_stream.rate_hz == pytest.approx(100, rel=0.01) and js_stream.gaps == 0


def test_build_dataset_filters_failures_and_computes_stats(tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    for i, ok in enumerate([True, False, True]):
        write_bag(bags / f"ep{i}", success=ok, instruction=f"task {i % 2}", duration=1.5 + 0.5 * i)
    report = build_dataset(
        find_bags([bags]), tmp_path / "ds", BuildConfig(fps=10, image_size=(16, 12)), only_success=True
    )
    assert [Path(b).name for b in report.written] == ["ep0", "ep2"] and [Path(b).name for b in report.filtered] == [
        "ep1"
    ]
    ds = LeRobotDataset(tmp_path / "ds")
    assert ds.num_episodes == 2 and ds.robot_type == "panda" and ds.fps == 10
    episodes = ds.episodes()
    direct = [read_bag(bags / name, BuildConfig(fps=10, image_size=(16, 12)))[0] for name in ("ep0", "ep2")]
    for read, built in zip(episodes, direct, strict=True):
        np.testing.assert_array_equal(read.states, built.states)
        np.testing.assert_array_equal(read.actions, built.actions)
        assert read.images["scene"].shape[1:] == (12, 16, 3)
        assert read.metadata["bag"] == built.metadata["bag"] and read.success
    stats = load_stats(tmp_path / "ds")
    states = np.concatenate([e.states for e in direct]).astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], states.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["observation.state"]["std"], states.std(0), rtol=1e-4, atol=1e-7)
    quality = json.loads((tmp_path / "ds" / "quality.json").read_text())
    assert len(quality["episodes"]) == 3 and quality["filtered"] == [str(bags / "ep1")]


def test_quality_reports_dropped_frames_and_nans(tmp_path: Path) -> None:
    write_bag(tmp_path / "gappy", skip_frames=tuple(range(10, 20)))
    _, quality = read_bag(tmp_path / "gappy", BuildConfig(fps=20))
    scene = next(s for s in quality.streams if s.topic == "/scene/image_raw")
    assert scene.gaps == 1 and scene.dropped == 10 and scene.max_gap_s == pytest.approx(11 / 30, abs=1e-3)
    assert any("out of sync" in w and "/scene/image_raw" in w for w in quality.warnings)
    assert any("10 messages dropped" in w for w in quality.warnings)

    write_bag(tmp_path / "nan", nan_at=1.0)
    _, quality = read_bag(tmp_path / "nan", BuildConfig(fps=20))
    assert not quality.ok and quality.nan_values["states"] >= 1
    write_bag(tmp_path / "ok")
    report = build_dataset([tmp_path / "nan", tmp_path / "ok"], tmp_path / "ds", BuildConfig(fps=20))
    assert report.written == [str(tmp_path / "ok")] and "NaN" in report.rejected[str(tmp_path / "nan")]


def test_bad_bags_give_clear_errors(tmp_path: Path) -> None:
    write_bag(tmp_path / "missing", js_names=[n for n in PANDA.joint_names if n != "joint4"])
    with pytest.raises(DatasetError, match=r"never reports joints \['joint4'\]"):
        read_bag(tmp_path / "missing")
    write_bag(tmp_path / "nocmd", commands=False)
    with pytest.raises(DatasetError, match="actions come from the commands"):
        read_bag(tmp_path / "nocmd")
    write_bag(tmp_path / "x")
    with pytest.raises(DatasetError, match="no /robot/joint_states topic"):
        read_bag(tmp_path / "x", BuildConfig(joint_states_topic="/robot/joint_states"))
    with pytest.raises(EmbodimentError, match="unknown embodiment"):
        read_bag(tmp_path / "x", BuildConfig(embodiment="no_such_robot"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: a bag")
    with pytest.raises(DatasetError, match="cannot open bag"):
        read_bag(tmp_path / "junk")
    with pytest.raises(DatasetError, match="no such bag"):
        find_bags([tmp_path / "nowhere"])
    with pytest.raises(DatasetError, match="no episode could be built"):
        build_dataset([tmp_path / "missing"], tmp_path / "ds")
    # Images are decoded by the one decoder the ROS nodes use, with its size checks: a frame a row
    # short is a clear error naming the topic, not a numpy reshape failure.
    write_bag(tmp_path / "short", truncated_frame=3)
    with pytest.raises(DatasetError, match=r"/wrist/image_raw: bgr8 image 32x24 with step 100 needs 2400 bytes"):
        read_bag(tmp_path / "short")


def test_crashed_bag_is_repaired(tmp_path: Path) -> None:
    write_bag(tmp_path / "ep", crash_at=0.7)
    crashed = tmp_path / "ep_crashed"
    with pytest.raises(DatasetError, match="gen0 data repair"):
        read_bag(crashed)
    repaired, count = repair_bag(crashed)
    assert repaired == tmp_path / "ep_crashed_repaired" and count > 100
    assert (repaired / "metadata.yaml").is_file()
    episode, _ = read_bag(repaired, BuildConfig(fps=20))
    full, _ = read_bag(tmp_path / "ep", BuildConfig(fps=20))
    assert 0.5 * len(full) < len(episode) < len(full)
    np.testing.assert_array_equal(episode.states, full.states[: len(episode)])
    assert not episode.success and episode.metadata["success_source"] == "unknown"
    with pytest.raises(DatasetError, match="exists already"):
        repair_bag(crashed)


def test_cli_build_import_info(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_bag(tmp_path / "bags" / "a")
    write_bag(tmp_path / "bags" / "b", success=False)
    out = tmp_path / "ds"
    assert (
        gen0(["data", "build", str(tmp_path / "bags"), "--out", str(out), "--fps", "10", "--image-size", "16x12"]) == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 2 episodes" in printed and "ok    " in printed
    assert gen0(["data", "import", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["successes"] == 1 and summary["cameras"] == ["scene", "wrist"]
    assert gen0(["data", "info", str(out)]) == 0 and "panda" in capsys.readouterr().out
    assert gen0(["data", "build", str(tmp_path / "bags"), "--out", str(out)]) == 2
    refused = capsys.readouterr()
    assert "already holds a dataset" in refused.err and "ok    " not in refused.out  # before reading any bag
    shutil.rmtree(out)
    with pytest.raises(SystemExit):
        gen0(["data", "build", str(tmp_path / "bags"), "--out", str(out), "--image-size", "big"])
    assert "image size must be WIDTHxHEIGHT" in capsys.readouterr().err
