"""``gen0 sim`` as a user runs it: real subprocesses printing JSON, and a collected dataset that an
independent reader (pyarrow) can open."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPO

GEN0 = [sys.executable, "-m", "gen0_policy.cli"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*GEN0, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_info_json_lists_robots_and_tasks():
    proc = run("sim", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    robots = {e["name"]: e for e in info["embodiments"]}
    assert {"ur5e", "panda", "g1"} <= set(robots)
    assert (robots["ur5e"]["dof"], robots["panda"]["dof"]) == (7, 8) and robots["g1"]["dof"] >= 16
    assert [c["role"] for c in robots["g1"]["cameras"]] == ["scene", "head"]
    assert len(robots["panda"]["joints"]) == 8 and robots["panda"]["joints"][-1]["gripper"]
    tasks = {t["name"]: t for t in info["tasks"]}
    assert len(tasks) >= 6 and all(len(t["instructions"]) >= 3 for t in tasks.values())
    assert "g1" in tasks["press_buttons"]["embodiments"]


def test_rollout_json_reports_success_and_lengths():
    proc = run("sim", "rollout", "--embodiment", "ur5e", "--task", "reach", "--episodes", "1", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["episodes"] == 1 and result["success_rate"] == 1.0
    assert result["episode_steps"][0] > 10
    assert result["episode_seconds"][0] == pytest.approx(result["episode_steps"][0] / result["control_rate_hz"])


def test_bad_requests_fail_with_a_clear_message(tmp_path):
    proc = run("sim", "rollout", "--embodiment", "g1", "--task", "stack", "--episodes", "1")
    assert proc.returncode == 2 and "g1 can do" in proc.stderr
    proc = run("sim", "rollout", "--embodiment", "ur5e", "--task", "reach", "--policy", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    gate = ("--grasp-gate-mm", "-1")
    proc = run("sim", "collect", "--embodiment", "panda", "--task", "stack", *gate, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "grasp gate must be >= 0 m" in proc.stderr and not (tmp_path / "x").exists()
    funnel = ("--funnel-slope", "-1")
    proc = run("sim", "collect", "--embodiment", "panda", "--task", "stack", *funnel, "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "funnel slope must be >= 0" in proc.stderr and not (tmp_path / "x").exists()


@pytest.mark.slow
def test_collect_writes_a_lerobot_dataset_with_workers(tmp_path):
    out = tmp_path / "ds"
    proc = run(
        "sim", "collect", "--embodiment", "panda", "--task", "reach,press_button", "--episodes", "1", "--workers", "2",
        "--fps", "20", "--image-size", "32x24", "--out", str(out), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["written"] + summary["failed"] == 2 and summary["written"] >= 1
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == summary["written"] and info["fps"] == 20
    table = pq.read_table(sorted((out / "data").rglob("*.parquet"))[0])
    assert len(set(table.column("episode_index").to_pylist())) == summary["written"]
    assert len(table.column("observation.state")[0]) == 8
    videos = sorted((out / "videos").rglob("*.mp4"))
    assert {p.parts[-3] for p in videos} == {"observation.images.scene", "observation.images.wrist"}


@pytest.mark.slow
def test_rollout_runs_a_trained_checkpoint(tmp_path):
    """Collect two sim demonstrations, train the tiny preset a few steps on them, and evaluate the
    checkpoint with ``--policy PATH``: the whole sim -> data -> train -> sim loop runs."""
    import torch

    from gen0_policy.data.windows import MixtureSource
    from gen0_policy.embodiment import load_embodiment
    from gen0_policy.sim import make_env
    from gen0_policy.sim.experts import make_expert
    from gen0_policy.sim.rollout import RolloutConfig, run_episode
    from gen0_policy.train.config import TrainConfig
    from gen0_policy.train.loop import train

    torch.set_num_threads(1)
    env = make_env("ur5e", "reach", camera_size=(32, 32))
    expert = make_expert(env)
    episodes = [run_episode(env, expert, s, RolloutConfig(record_fps=10, image_size=(32, 32))).episode for s in (0, 1)]
    env.close()
    out = tmp_path / "run"
    config = TrainConfig(
        out_dir=str(out), preset="test", model={"language_encoder": "hash"}, steps=4, batch_size=4,
        warmup_steps=1, val_every=4, save_every=4, log_every=4, precision="fp32", threads=1, progress=False,
        val_fraction=0.5,
    )  # fmt: skip
    train(config, [MixtureSource("ur5e", episodes)], [load_embodiment("ur5e")])
    proc = run(
        "sim", "rollout", "--embodiment", "ur5e", "--task", "reach", "--policy", str(out), "--episodes", "1",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["policy"] == str(out) and result["episodes"] == 1
    assert 0.0 <= result["success_rate"] <= 1.0 and result["episode_steps"][0] > 0


def test_rollout_video_is_a_decodable_mp4_with_every_recorded_frame(tmp_path):
    import av

    proc = run(
        "sim", "rollout", "--embodiment", "ur5e", "--task", "reach", "--episodes", "1", "--seed", "3",
        "--video", str(tmp_path), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["successes"] == 1 and len(result["videos"]) == 1
    path = Path(result["videos"][0])
    assert path.parent == tmp_path and path.name == "ur5e_reach_seed3_success.mp4"
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    steps = result["episode_steps"][0] + 50  # the episode runs on 0.5 s (50 control steps) after success
    assert len(frames) == -(-steps // 5)  # one frame every 5th 100 Hz step: 20 fps
    assert frames[0].shape == (240 + 12, 2 * 320, 3)  # scene and wrist side by side, the status strip below
    strip_first, strip_last = frames[0][-6:].reshape(-1, 3).mean(0), frames[-1][-6:].reshape(-1, 3).mean(0)
    assert abs(strip_first[1] - strip_first[0]) < 20  # grey while running
    assert strip_last[1] > 150 and strip_last[0] < 100  # green after success


@pytest.mark.slow
def test_checkpoint_rollout_runs_the_nodes_runtime_and_films_that_episode(tmp_path):
    """By default a checkpoint drives the sim through the policy node's runtime and the sim node's
    controllers (sim/lockstep.py): the episode is the lockstep loop's, to the step, and its video is
    of that episode; ``--executor direct`` is the servo-level controller, and says so."""
    import av

    from gen0_policy.sim.lockstep import Lockstep

    checkpoint = str(REPO / "checkpoints" / "multitask_cpu")
    common = ("sim", "rollout", "--embodiment", "panda", "--task", "reach", "--policy", checkpoint, "--seed", "100")
    proc = run(*common, "--episodes", "1", "--video", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["executor"] == "runtime" and result["per_episode"][0]["chunks"] >= 1
    expected = Lockstep(checkpoint, "panda", "reach", {}, {}).episode(100, timeout_s=3.0)
    assert result["per_episode"][0]["success"] == expected["success"]
    # To the control tick: in fp32 (ONNX Runtime, the default engine) a last-bit difference between
    # this worker and the CLI's fresh process once moved the end by one 10 ms tick (1.68 s against 1.67)
    assert result["episode_seconds"][0] == pytest.approx(expected["seconds"], abs=0.011)
    with av.open(result["videos"][0]) as container:
        frames = sum(1 for _ in container.decode(video=0))
    linger = 50 if expected["success"] else 0  # 0.5 s at 100 Hz after success
    assert frames == -(-(result["episode_steps"][0] + linger) // 5)
    direct = run(*common, "--episodes", "1", "--executor", "direct", "--json")
    assert direct.returncode == 0, direct.stderr
    assert json.loads(direct.stdout)["executor"] == "direct"
    bad = run(*common, "--execute", "99")
    assert bad.returncode != 0 and "--execute must be 1-16 chunk steps" in bad.stderr
    sawyer = run("sim", "rollout", "--embodiment", "sawyer", "--task", "reach", "--policy", checkpoint)
    assert sawyer.returncode != 0 and "gen0 bench metaworld" in sawyer.stderr


def test_checkpoint_rollout_records_uncertainty_signals_without_changing_the_outcome():
    """What benchmarks/uncertainty_benchmark.py relies on: samples only measure the spread (the same
    episode with 1 or 2 samples), every inference leaves its signals, and a hold re-infers a step later."""
    import math

    import numpy as np

    from gen0_policy.runtime.uncertainty import SIGNALS
    from gen0_policy.sim import make_env
    from gen0_policy.sim.policies import CheckpointController
    from gen0_policy.sim.rollout import RolloutConfig, run_episode

    results = {}
    with make_env("panda", "reach") as env:
        for k in (1, 2):
            controller = CheckpointController(str(REPO / "checkpoints" / "multitask_cpu"), num_samples=k)
            result = run_episode(env, controller, 101, RolloutConfig(linger=0.0, max_duration=1.0))
            results[k] = (result.steps, result.success, [t for t, _ in controller.signals], controller.signals)
    assert results[1][:3] == results[2][:3]  # the executed chunk is the deterministic one either way
    signals = results[2][3]
    assert len(signals) == math.ceil(results[2][0] / 100 / (controller.execute * controller.policy.step_dt))
    assert all(set(values) == set(SIGNALS) for _, values in signals)
    assert all(math.isfinite(v) for _, values in signals[1:] for v in values.values())
    assert math.isnan(results[1][3][0][1]["sample_spread"])  # one sample: no spread
    now = signals[-1][0]
    home = controller.env.embodiment.home
    controller.hold(home, now)
    assert not controller.wants_images(now + 0.5 * controller.policy.step_dt)
    assert controller.wants_images(now + controller.policy.step_dt)
    before = controller.commanded
    held = controller.act({"time": now, "joint_positions": np.ones(8)})
    np.testing.assert_allclose(controller._chunk, np.repeat(home[None], len(controller._chunk), axis=0))
    # toward the held target, no faster than the robot's limits allow (the runtime's safety filter)
    emb = controller.env.embodiment
    assert np.all(np.abs(held - before) <= emb.velocity_limits * controller.env.control_dt + 1e-12)


def test_checkpoint_rollout_moves_within_the_robots_limits():
    """The rollout drives the robot as the policy node does, through the runtime's safety filter: a wild
    chunk (random targets anywhere in the joint ranges) still moves every joint within its velocity and
    acceleration limits."""
    import numpy as np

    from gen0_policy.sim import make_env
    from gen0_policy.sim.policies import CheckpointController

    controller = CheckpointController(str(REPO / "checkpoints" / "multitask_cpu"))
    with make_env("panda", "reach") as env:
        env.reset(3)
        controller.reset(env)
        emb, dt = env.embodiment, env.control_dt
        controller._chunk = emb.lower + np.random.default_rng(0).random((16, emb.dof)) * (emb.upper - emb.lower)
        controller._chunk_start = 0.0
        targets = [controller.act({"time": k * dt, "joint_positions": emb.home}) for k in range(40)]
    velocity = np.diff(np.array([emb.home, *targets]), axis=0) / dt
    assert np.all(np.abs(velocity) <= emb.velocity_limits + 1e-9)
    assert np.all(np.abs(np.diff(velocity, axis=0)) / dt <= emb.acceleration_limits + 1e-6)
    assert np.max(np.abs(velocity) / emb.velocity_limits) > 0.9  # it chased the chunk at the limits
