"""Image novelty: feature statistics fitted from a checkpoint's training frames, carried in the
checkpoint (verified, part of its content id), and scored at inference: training-like frames near 1,
a covered camera far above."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import make_embodiment, make_episodes

from gen0_policy.data.lerobot import LeRobotWriter
from gen0_policy.data.windows import MixtureSource
from gen0_policy.errors import CheckpointError
from gen0_policy.model.checkpoint import load_policy
from gen0_policy.model.novelty import Z2_CLIP, ImageNovelty
from gen0_policy.model.policy import Gen0Policy
from gen0_policy.runtime.uncertainty import SignalMonitor
from gen0_policy.train.config import TrainConfig
from gen0_policy.train.loop import train

torch.set_num_threads(1)


def test_fit_scores_the_training_distribution_near_one_and_a_shift_far_above() -> None:
    rng = np.random.default_rng(0)
    mean, std = rng.normal(0, 3, 64), rng.uniform(0.5, 2.0, 64)
    std[:4] = 0.0  # features that never vary in training: floored, not divided by zero
    novelty = ImageNovelty.fit({"panda/scene": rng.normal(mean, std, (4000, 64))})
    fresh = rng.normal(mean, std, (200, 64))
    scores = [novelty.score("panda", "scene", f) for f in fresh]
    assert 0.8 < np.mean(scores) < 1.2
    shifted = [novelty.score("panda", "scene", f + 2 * std.max()) for f in fresh]
    assert min(shifted) > 3 * max(scores)
    assert novelty.score("panda", "scene", mean + 1e9) == pytest.approx(Z2_CLIP)  # clipped, not infinite
    assert math.isnan(novelty.score("panda", "wrist", mean))  # no statistics for this camera
    assert math.isnan(novelty.score("panda", "scene", mean[:10]))  # another feature size
    again = ImageNovelty.from_dict(json.loads(json.dumps(novelty.to_dict())))
    assert again.score("panda", "scene", fresh[0]) == pytest.approx(scores[0], rel=1e-4)
    for bad in ({"format": "x", "cameras": {}}, {**novelty.to_dict(), "cameras": {"a/b": {"mean": [1.0]}}}):
        with pytest.raises(CheckpointError):
            ImageNovelty.from_dict(bad)
    with pytest.raises(CheckpointError, match="n >= 2"):
        ImageNovelty.fit({"panda/scene": np.zeros((1, 3))})


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """A tiny Panda policy and the LeRobot dataset it was trained on."""
    root = tmp_path_factory.mktemp("novelty")
    episodes = make_episodes("panda", 6, image=48)
    data = root / "panda_data"
    with LeRobotWriter(data, make_embodiment("panda"), 10.0) as writer:
        for episode in episodes:
            writer.add_episode(episode)
    config = TrainConfig(
        out_dir=str(root / "run"), preset="test", model={"language_encoder": "hash"}, steps=30, batch_size=8,
        warmup_steps=5, val_every=30, save_every=30, log_every=30, precision="fp32", threads=1, progress=False,
    )  # fmt: skip
    train(config, [MixtureSource("panda", episodes)], [make_embodiment("panda")])
    return root / "run", data, episodes


def test_gen0_model_novelty_adds_verified_statistics_used_at_inference(checkpoint, tmp_path: Path) -> None:
    run, data, episodes = checkpoint
    before = Gen0Policy.load(run, precision="fp32")
    obs = {
        "embodiment": "panda",
        "instruction": episodes[0].instruction,
        "joint_positions": episodes[0].states[3],
        "images": {cam: frames[3] for cam, frames in episodes[0].images.items()},
    }
    assert math.isnan(before.infer(obs)["image_novelty"])  # no statistics: not measured, never holds
    cli = [sys.executable, "-m", "gen0_policy.cli", "model", "novelty", "--checkpoint", str(run), "--data", str(data)]
    done = subprocess.run([*cli, "--every", "2"], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["frames"] == {"panda/scene": 72, "panda/wrist": 72}  # 6 episodes x 24 frames / 2
    policy = Gen0Policy.load(run, precision="fp32")
    assert policy.checkpoint_id == report["checkpoint_id"] != before.checkpoint_id  # the content changed
    seen = policy.infer(obs)
    covered = policy.infer({**obs, "images": {**obs["images"], "scene": np.zeros_like(obs["images"]["scene"])}})
    assert seen["image_novelty"] < 3 and covered["camera_novelty"]["scene"] > 3 * seen["camera_novelty"]["scene"]
    assert covered["image_novelty"] == max(covered["camera_novelty"].values())
    monitor = SignalMonitor(make_embodiment("panda").upper - make_embodiment("panda").lower)
    assert monitor.update(covered, 0.0, policy.step_dt)["image_novelty"] == covered["image_novelty"]
    # Exported with the checkpoint; edited or unlisted statistics are refused like any other file.
    export = [sys.executable, "-m", "gen0_policy.cli", "model", "export", "--checkpoint", str(run)]
    subprocess.run([*export, "--out", str(tmp_path / "x")], check=True, capture_output=True, timeout=120)
    assert (tmp_path / "x" / "novelty.json").is_file()
    assert Gen0Policy.load(tmp_path / "x").checkpoint_id == policy.checkpoint_id
    path = load_policy(tmp_path / "x").path / "novelty.json"
    path.write_text(path.read_text().replace('"frames": 72', '"frames": 73'))
    with pytest.raises(CheckpointError, match=r"novelty\.json"):
        load_policy(tmp_path / "x")
    manifest = tmp_path / "x" / "manifest.json"
    manifest.write_text(json.dumps({k: v for k, v in json.loads(manifest.read_text()).items() if k != "novelty.json"}))
    with pytest.raises(CheckpointError, match=r"novelty\.json"):
        load_policy(tmp_path / "x")


def test_novelty_reuses_the_inference_pass_of_the_vision_stem(checkpoint) -> None:
    """The score comes from the feature maps the sampler already made (the stem ran twice per chunk
    once), and equals a separate pass over the same pixels; a camera left out is still not scored."""
    run, data, episodes = checkpoint
    subprocess.run(
        [sys.executable, "-m", "gen0_policy.cli", "model", "novelty", "--checkpoint", str(run), "--data", str(data)],
        capture_output=True,
        timeout=300,
        check=True,
    )
    policy = Gen0Policy.load(run, precision="fp32")
    obs = {
        "embodiment": "panda",
        "instruction": episodes[1].instruction,
        "joint_positions": episodes[1].states[5],
        "images": {"scene": episodes[1].images["scene"][5]},
    }
    passes = []
    policy.model.vision.stem.register_forward_hook(lambda *_: passes.append(1))
    out = policy.infer(obs, num_samples=3)
    assert len(passes) == 1
    assert set(out["camera_novelty"]) == {"scene"}
    pixels = policy.processor.observation(obs, policy.language.encode([obs["instruction"]])[0])["images"]
    separate = policy.model.vision.describe(pixels[:, :1])[0, 0].numpy()
    assert out["camera_novelty"]["scene"] == pytest.approx(policy.novelty.score("panda", "scene", separate), rel=1e-5)
