"""Post-training core without ROS: a real tiny checkpoint and a real tiny dataset (LeRobotWriter),
real torch steps; bags written with real ROS messages; the child-process runner really killed."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import wait_until
from gen0_policy.cli import main as gen0
from gen0_policy.data.episode import Episode
from gen0_policy.data.lerobot import LeRobotWriter
from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import ConfigError, DatasetError
from gen0_policy.model.checkpoint import load_policy
from gen0_policy.model.policy import Gen0Policy
from gen0_policy.train.posttrain import PostTrainJob, post_train
from gen0_policy.train.posttrain_runner import PostTrainProcess

pytestmark = pytest.mark.timeout(300)

PANDA = load_embodiment("panda")


def make_dataset(root: Path, episodes: int = 4, steps: int = 16, fps: float = 10.0) -> Path:
    """Panda reaches towards a goal drawn in the image (left or right): learnable, 32x32 frames."""
    with LeRobotWriter(root, PANDA, fps) as writer:
        for i in range(episodes):
            rng = np.random.default_rng(i)
            goal = PANDA.home + rng.uniform(-0.3, 0.3, PANDA.dof).astype(np.float32)
            s = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
            actions = (PANDA.home + (goal - PANDA.home) * s).astype(np.float32)
            states = np.concatenate([PANDA.home[None], actions[:-1]]).astype(np.float32)
            frames = np.zeros((steps, 32, 32, 3), np.uint8)
            frames[:, 8:16, (4 if goal[0] < 0 else 20) :][..., 0] = 255
            images = {"scene": frames, "wrist": frames.copy()}
            writer.add_episode(Episode("panda", "reach the red mark", fps, states, actions, images, task="reach"))
    return root


def make_base(path: Path, run: str = "base") -> Path:
    """A real checkpoint of the ~1 M-parameter test preset (untrained weights), Panda statistics."""
    from gen0_policy.model.checkpoint import save_policy
    from gen0_policy.model.config import preset
    from gen0_policy.model.modeling import Gen0Model
    from gen0_policy.model.processor import JointStats

    torch.manual_seed(0)
    config = preset("test", language_encoder="hash")
    centre = PANDA.home.astype(np.float32)
    scale = np.full(PANDA.dof, 0.2, np.float32)
    stats = {"panda": JointStats(centre, scale, centre, scale)}
    save_policy(path, Gen0Model(config).state_dict(), config, [PANDA], stats, {"run": run, "fps": 10.0})
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("posttrain_assets")
    return {"dataset": make_dataset(root / "dataset"), "base": make_base(root / "base")}


def job(tmp_path: Path, assets: dict[str, Path], **overrides) -> PostTrainJob:
    """A small job; overrides that are not job fields are TrainConfig overrides."""
    fields = dict(data=[str(assets["dataset"])], out_dir=str(tmp_path / "run"), base=str(assets["base"]))
    train = dict(steps=4, batch_size=2, lr=1e-3, val_fraction=0.25, val_windows=4, threads=1)
    for key, value in overrides.items():
        (fields if key in PostTrainJob.__dataclass_fields__ else train)[key] = value
    return PostTrainJob(**fields, train=train)


def test_job_rejects_bad_settings(tmp_path: Path, assets) -> None:
    for bad, words in [
        (dict(data=[]), "needs data"),
        (dict(steps=0), "steps must be positive"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(val_fraction=1.0), "validation fraction"),
        (dict(freeze=["wings"]), "cannot freeze ['wings']"),
        (dict(model={"width": 64}), "from scratch"),
        (dict(stpes=3), "unknown train config keys ['stpes']"),
        (dict(init_from="y"), "sets ['init_from']"),
    ]:
        with pytest.raises(ConfigError, match=None) as info:
            job(tmp_path, assets, **bad)
        assert words in str(info.value)
    assert job(tmp_path, assets, freeze=["language", "vision"]).config().freeze == ["language_projection", "vision"]


def test_job_is_the_train_config_with_post_training_defaults(tmp_path: Path, assets) -> None:
    """One config, defaults in one place: what the job leaves out comes from POST_TRAINING_DEFAULTS,
    and the schedule follows the steps."""
    from gen0_policy.train.config import POST_TRAINING_DEFAULTS, TrainConfig

    config = PostTrainJob(data=[str(assets["dataset"])], out_dir=str(tmp_path / "run")).config()
    assert isinstance(config, TrainConfig)
    assert {k: getattr(config, k) for k in POST_TRAINING_DEFAULTS} == POST_TRAINING_DEFAULTS
    assert (config.warmup_steps, config.val_every, config.save_every) == (20, 40, 200)
    config = job(tmp_path, assets, steps=1000, warmup_steps=5).config()
    assert (config.steps, config.warmup_steps, config.val_every, config.save_every) == (1000, 5, 200, 1000)
    assert config.init_from == str(assets["base"]) and config.out_dir == str(tmp_path / "run")
    # The job file round-trips (the child process reads it).
    again = PostTrainJob.from_dict(json.loads(json.dumps(job(tmp_path, assets).to_dict())))
    assert again.config() == job(tmp_path, assets).config()


def test_post_train_reports_before_after_and_keeps_frozen_parts(tmp_path: Path, assets) -> None:
    events: list[dict] = []
    result = post_train(job(tmp_path, assets, freeze=["vision"]), events.append)

    assert result["status"] == "succeeded" and result["steps_completed"] == 4
    phases = [e["phase"] for e in events if e["event"] == "phase"]
    assert phases[:3] == ["preparing data", "validating", "training"] and "saving" in phases
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == [1, 2, 3, 4]
    assert all(e["eta"] >= 0 and math.isfinite(e["loss"]) for e in events if e["event"] == "step")
    split = next(e for e in events if e["event"] == "split")
    assert (split["train_episodes"], split["val_episodes"]) == (3, 1)
    validations = [e for e in events if e["event"] == "validation"]
    assert validations[0]["step"] == 0 and validations[0]["validation_error"] == result["validation_error_before"]
    assert validations[-1]["step"] == 4 and validations[-1]["validation_error"] == result["validation_error_after"]
    assert math.isfinite(result["validation_error_before"]) and math.isfinite(result["validation_error_after"])

    new, base = load_policy(result["checkpoint_path"]), load_policy(assets["base"])
    vision = [k for k in base.state_dict if k.startswith("vision")]
    assert vision, "the test preset has vision parameters"
    assert all(torch.equal(new.state_dict[k], base.state_dict[k]) for k in vision)  # frozen
    assert any(not torch.equal(new.state_dict[k], base.state_dict[k]) for k in base.state_dict if k not in vision)
    assert new.stats["panda"].action_mean.tolist() == base.stats["panda"].action_mean.tolist()  # base's normalization
    policy = Gen0Policy.load(result["checkpoint_path"])
    obs = {"embodiment": "panda", "instruction": "reach", "joint_positions": PANDA.home, "images": {}}
    assert policy.infer(obs)["actions"].shape == (policy.chunk_size, PANDA.dof)
    # The run folder refuses a second run rather than overwriting it.
    with pytest.raises(ConfigError, match="already holds"):
        post_train(job(tmp_path, assets), events.append)


def test_stop_request_saves_last_good_checkpoint(tmp_path: Path, assets) -> None:
    events: list[dict] = []
    stop = lambda: sum(e["event"] == "step" for e in events) >= 2  # noqa: E731
    result = post_train(job(tmp_path, assets, steps=1000), events.append, stop)
    assert result["status"] == "canceled" and result["steps_completed"] == 2
    assert load_policy(result["checkpoint_path"]).meta["step"] == 2
    assert "last good checkpoint" in result["message"]


def test_bad_data_is_a_clear_error(tmp_path: Path, assets) -> None:
    with pytest.raises(DatasetError, match="no such bag or dataset folder"):
        post_train(job(tmp_path, assets, data=[str(tmp_path / "missing")], out_dir=str(tmp_path / "a")), print)
    corrupt = make_dataset(tmp_path / "corrupt", episodes=2)
    parquet = next((corrupt / "data").rglob("*.parquet"))
    parquet.write_bytes(parquet.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"cannot read .*file-000\.parquet"):
        post_train(job(tmp_path, assets, data=[str(corrupt)], out_dir=str(tmp_path / "b")), print)
    (tmp_path / "neither").mkdir()
    with pytest.raises(DatasetError, match="neither a rosbag2 folder"):
        post_train(job(tmp_path, assets, data=[str(tmp_path / "neither")], out_dir=str(tmp_path / "c")), print)


def test_cli_posttrains_on_recorded_bags(tmp_path: Path, assets, capsys: pytest.CaptureFixture) -> None:
    from test_data_bags import write_bag

    bags = tmp_path / "bags"
    for i in range(3):
        write_bag(bags / f"episode_{i}", duration=2.0)
    out = tmp_path / "run"
    argv = ["posttrain", "--base", str(assets["base"]), "--data", str(bags), "--out", str(out)]
    argv += ["--steps", "2", "--batch-size", "2", "--val-fraction", "0.3", "--threads", "1", "--json"]
    assert gen0(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    built = next(e for e in events if e["event"] == "data")
    assert built["bags"] == 3 and built["written"] == 3 and not built["rejected"]
    result = events[-1]
    assert result["event"] == "result" and result["status"] == "succeeded"
    assert (out / "data" / "bags" / "meta" / "info.json").is_file()
    assert load_policy(result["checkpoint_path"]).meta["fps"] == 10.0  # bags resampled at the base's rate

    # Bad input on the command line: one clear line, exit code 1, nothing trained.
    assert gen0(["posttrain", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 1
    assert "no such bag or dataset folder" in capsys.readouterr().err


def test_runner_reports_a_killed_child_as_failure(tmp_path: Path, assets) -> None:
    """A child killed from outside (as the out-of-memory killer does) is a failure with the reason."""
    proc = PostTrainProcess(job(tmp_path, assets, steps=100000))
    proc.start()
    wait_until(lambda: any(e["event"] == "step" for e in proc.events), timeout=120, what="the first step")
    os.kill(proc.proc.pid, signal.SIGKILL)
    began = time.monotonic()
    outcome = proc.wait(timeout=30)
    assert time.monotonic() - began < 10
    assert outcome.status == "failed" and outcome.returncode == -signal.SIGKILL
    assert "killed by SIGKILL" in outcome.message and "out-of-memory" in outcome.message
    assert outcome.checkpoint_path == ""  # nothing was saved; the base is untouched
    assert load_policy(assets["base"]).meta["run"] == "base"
