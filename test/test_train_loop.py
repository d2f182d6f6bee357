"""The training loop: exact resume, DDP/FSDP over two real gloo processes equal to one process,
post-training with frozen parts and a new robot, the event hooks and the LR schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import ROBOTS, make_embodiment, make_episode, make_episodes
from safetensors.torch import load_file

from gen0_policy.data.windows import MixtureSource
from gen0_policy.errors import CheckpointError, ConfigError, DatasetError
from gen0_policy.model.checkpoint import load_policy, save_policy
from gen0_policy.model.counting import component_of
from gen0_policy.train.config import TrainConfig
from gen0_policy.train.loop import Trainer, lr_at, train

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent


def tiny_config(out: Path, **overrides) -> TrainConfig:
    base = dict(
        out_dir=str(out),
        preset="test",
        model={"language_encoder": "hash"},
        steps=6,
        batch_size=4,
        warmup_steps=2,
        precision="fp32",
        threads=1,
        progress=False,
        val_every=3,
        val_windows=8,
        save_every=100,
        log_every=1,
    )
    return TrainConfig(**{**base, **overrides})


def sources(names=("ur5e", "panda")) -> list[MixtureSource]:
    return [MixtureSource(n, make_episodes(n, 3, seed=i), weight=1.0 + i) for i, n in enumerate(names)]


def robots() -> list:
    return [make_embodiment(n) for n in ROBOTS]


def test_resume_continues_the_same_curve(tmp_path: Path) -> None:
    """6 steps straight == 3 steps, save, a new process-like Trainer resumes, 3 more (bit-exact)."""
    straight = Trainer(tiny_config(tmp_path / "a", ema_decay=0.9), sources(), robots())
    losses_a = [straight.train_step()["loss"] for _ in range(6)]
    straight.save()

    first = Trainer(tiny_config(tmp_path / "b", ema_decay=0.9), sources(), robots())
    losses_b = [first.train_step()["loss"] for _ in range(3)]
    first.save()
    second = Trainer(tiny_config(tmp_path / "b", ema_decay=0.9), sources(), robots())
    assert second.step == 3
    second.run()
    assert second.step == 6
    a = load_file(str(tmp_path / "a" / "ckpt-0000006" / "train_state" / "weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "ckpt-0000006" / "train_state" / "weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ema_a = load_file(str(tmp_path / "a" / "ckpt-0000006" / "model.safetensors"))  # EMA weights for inference
    ema_b = load_file(str(tmp_path / "b" / "ckpt-0000006" / "model.safetensors"))
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert not all(torch.equal(ema_a[k], a[k]) for k in a)  # EMA really differs from the raw weights
    assert losses_a[:3] == losses_b
    # A run that is already finished does nothing more when started again.
    assert Trainer(tiny_config(tmp_path / "b", ema_decay=0.9), sources(), robots()).step == 6


def test_a_changed_model_or_no_data_is_refused_with_a_message(tmp_path: Path) -> None:
    """Issue 17: resuming a run folder with another model said 'size mismatch' in a traceback, and an
    empty mixture said 'mixes control rates []'."""
    first = Trainer(tiny_config(tmp_path / "run", steps=1), sources(), robots())
    first.train_step()
    first.save()
    with pytest.raises(ConfigError, match=r"holds a run of another model \(width 128 -> 64\)"):
        Trainer(tiny_config(tmp_path / "run", model={"language_encoder": "hash", "width": 64}), sources(), robots())
    with pytest.raises(DatasetError, match="no datasets"):
        Trainer(tiny_config(tmp_path / "empty"), [], robots())


def test_loss_falls_and_validation_is_logged(tmp_path: Path) -> None:
    config = tiny_config(tmp_path / "run", steps=40, batch_size=8, lr=2e-3, val_every=20, save_every=40)
    config.val_samples = 3
    trainer = Trainer(config, sources(), robots())
    losses = [trainer.train_step()["loss"] for _ in range(40)]
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    metrics = trainer.validate()
    assert np.isfinite(metrics["val/next_action_mse"]) and metrics["val/sample_spread"] > 0
    trainer.run()  # already at the last step: logs, validates and saves only
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"images": 0})
    events.Reload()
    assert "val/chunks" in events.Tags()["images"]  # predicted vs demonstrated chunks (issue 17)
    image = events.Images("val/chunks")[-1]
    assert image.encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n" and image.height > 300
    events = list((tmp_path / "run" / "tb").glob("events.*"))
    assert events and events[0].stat().st_size > 0
    assert (tmp_path / "run" / "latest").read_text() == "ckpt-0000040"


def test_run_streams_events_on_the_config_schedule_and_stops_on_request(tmp_path: Path) -> None:
    """The one loop's hooks: phases, steps, validations and checkpoints as events, a stop request
    saving what was trained; a non-finite loss is a clear error."""
    events: list[dict] = []
    config = tiny_config(tmp_path / "run", steps=4, val_every=2, save_every=3, validate_first=True)
    Trainer(config, sources(), robots()).run(events.append)
    kinds = [(e["event"], e.get("step", e.get("phase"))) for e in events]
    assert kinds == [
        ("phase", "validating"), ("validation", 0),
        ("phase", "training"), ("step", 1), ("step", 2),
        ("phase", "validating"), ("validation", 2),
        ("phase", "training"), ("step", 3),
        ("phase", "saving"), ("checkpoint", 3),
        ("phase", "training"), ("step", 4),
        ("phase", "validating"), ("validation", 4),
        ("phase", "saving"), ("checkpoint", 4),
    ]  # fmt: skip
    steps = [e for e in events if e["event"] == "step"]
    assert all(e["total_steps"] == 4 and e["eta"] >= 0 and np.isfinite(e["loss"]) for e in steps)
    assert steps[-1]["eta"] == 0
    assert events[-1]["path"].endswith("ckpt-0000004")

    events.clear()
    stop = lambda: sum(e["event"] == "step" for e in events) >= 2  # noqa: E731
    stopped = Trainer(tiny_config(tmp_path / "stopped", steps=100), sources(), robots())
    stopped.run(events.append, stop)
    assert stopped.step == 2 and events[-1]["event"] == "checkpoint" and events[-1]["step"] == 2
    assert (tmp_path / "stopped" / "latest").read_text() == "ckpt-0000002"
    assert not any(e["event"] == "validation" for e in events)  # a stop saves at once, without validating
    nothing = Trainer(tiny_config(tmp_path / "nothing", steps=100), sources(), robots())
    nothing.run(should_stop=lambda: True)
    assert nothing.step == 0 and not (tmp_path / "nothing" / "latest").exists()

    diverging = Trainer(tiny_config(tmp_path / "nan"), sources(), robots())
    with torch.no_grad():
        for p in diverging.module.parameters():
            p.fill_(float("nan"))  # as weights look after a diverged step
    with pytest.raises(DatasetError, match="training loss became nan at step 1"):
        diverging.run()


def test_post_training_freezes_parts_and_adds_a_robot(tmp_path: Path) -> None:
    train(tiny_config(tmp_path / "pre", steps=2, save_every=2), sources(("ur5e", "panda")), robots())
    pre = load_policy(tmp_path / "pre")
    config = tiny_config(
        tmp_path / "post", steps=3, save_every=3, init_from=str(tmp_path / "pre"), freeze=["vision", "backbone"]
    )
    train(config, [MixtureSource("g1", make_episodes("g1", 3))], robots())
    post = load_policy(tmp_path / "post")
    assert [e.name for e in post.embodiments] == ["panda", "ur5e", "g1"]  # old token ids kept
    np.testing.assert_array_equal(post.stats["panda"].action_mean, pre.stats["panda"].action_mean)
    changed = {component_of(k) for k in pre.state_dict if not torch.equal(pre.state_dict[k], post.state_dict[k])}
    assert "vision" not in changed and "backbone" not in changed
    assert "expert" in changed and "embodiment" in changed


def test_post_training_may_add_parts_but_never_drops_or_loses_a_weight(tmp_path: Path) -> None:
    """init_from with model overrides that add parts (a goal head here, fine keypoints in
    multitask_cpu_lite0_fine.yaml): they start fresh, every other weight comes from the checkpoint; a
    checkpoint with weights this model has no place for, or missing some of its own, is refused."""
    train(tiny_config(tmp_path / "pre", steps=2, save_every=2), sources(), robots())
    pre = load_policy(tmp_path / "pre")
    grown = tiny_config(
        tmp_path / "grown", steps=1, init_from=str(tmp_path / "pre"),
        model={"language_encoder": "hash", "goal_loss_weight": 0.3},
    )  # fmt: skip
    trainer = Trainer(grown, sources(), robots())
    state = trainer.module.state_dict()
    assert {k for k in state if k not in pre.state_dict} == {"goal_head.weight", "goal_head.bias"}
    assert all(torch.equal(state[k], v) for k, v in pre.state_dict.items())
    trainer.save()
    shrunk = tiny_config(tmp_path / "shrunk", steps=1, init_from=str(tmp_path / "grown"), model={"goal_loss_weight": 0})
    with pytest.raises(CheckpointError, match=r"goal_head\.weight.*have no place"):
        Trainer(shrunk, sources(), robots())
    partial = {k: v for k, v in pre.state_dict.items() if k != "proprio.weight"}
    save_policy(tmp_path / "partial", partial, pre.config, pre.embodiments, pre.stats, {"run": "partial"})
    with pytest.raises(CheckpointError, match=r"\['proprio\.weight'\] are missing"):
        Trainer(tiny_config(tmp_path / "broken", steps=1, init_from=str(tmp_path / "partial")), sources(), robots())


def run_cli(args: list[str], nproc: int, port: int, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={port}"]
        cmd += ["-m", "gen0_policy.cli", *args]
    else:
        cmd = [sys.executable, "-m", "gen0_policy.cli", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A real LeRobot v3 folder (the format `gen0 sim collect` writes) of four panda episodes."""
    from gen0_policy.data.lerobot import LeRobotWriter
    from gen0_policy.embodiment import load_embodiment

    root = tmp_path / "panda_reach"
    with LeRobotWriter(root, load_embodiment("panda"), 10.0) as writer:
        for i in range(4):
            writer.add_episode(make_episode("panda", i))
    return root


def distributed_equals_single(strategy: str, dataset: Path, tmp_path: Path, port: int) -> None:
    common = ["train", "preset=test", "model.language_encoder=hash", f"datasets=[{{path: {dataset}}}]", "steps=2"]
    common += ["batch_size=4", "warmup_steps=1", "precision=fp32", "threads=1", "progress=false", "val_fraction=0.25"]
    run_cli([*common, f"out_dir={tmp_path / 'one'}", "strategy=single"], 1, port, tmp_path)
    run_cli([*common, f"out_dir={tmp_path / 'two'}", f"strategy={strategy}"], 2, port, tmp_path)
    from gen0_policy.model.policy import Gen0Policy

    assert Gen0Policy.load(tmp_path / "one", precision="fp32").camera_sizes == {
        "panda": {"scene": [32, 32], "wrist": [32, 32]}
    }
    one = load_file(str(tmp_path / "one" / "ckpt-0000002" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "ckpt-0000002" / "model.safetensors"))
    init = Trainer(
        tiny_config(
            tmp_path / "init", datasets=[{"path": str(dataset)}], val_fraction=0.25, model={"language_encoder": "hash"}
        )
    ).module.state_dict()
    assert one.keys() == two.keys()
    moved = 0
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=5e-6)  # updates are ~3e-4
        moved += not torch.equal(one[key], init[key])
    assert moved > len(one) // 2  # the step really changed the weights


def test_ddp_two_processes_equal_one(dataset: Path, tmp_path: Path) -> None:
    distributed_equals_single("ddp", dataset, tmp_path, 29631 + int(os.environ.get("ROS_DOMAIN_ID", "0")))


@pytest.mark.slow
def test_fsdp_two_processes_equal_one(dataset: Path, tmp_path: Path) -> None:
    distributed_equals_single("fsdp", dataset, tmp_path, 29731 + int(os.environ.get("ROS_DOMAIN_ID", "0")))


def test_lr_schedule() -> None:
    config = TrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, config) == pytest.approx(1e-4)
    assert lr_at(9, config) == pytest.approx(1e-3)
    assert lr_at(10, config) == pytest.approx(1e-3)
    assert lr_at(55, config) == pytest.approx(0.55e-3)
    assert lr_at(100, config) == pytest.approx(1e-4)
    assert all(lr_at(s, config) >= lr_at(s + 1, config) for s in range(10, 100))


def test_cli_ctrl_c_saves_resume_says_where_and_curves_are_drawn(dataset: Path, tmp_path: Path) -> None:
    """`gen0 train` interrupted with SIGINT saves what it trained and exits; the same command resumes
    from there (and says so); a finished run leaves curves.png beside its checkpoints."""
    import signal
    import time

    out = tmp_path / "run"
    args = [sys.executable, "-m", "gen0_policy.cli", "train", "preset=test", "model.language_encoder=hash",
            f"datasets=[{{path: {dataset}}}]", "batch_size=4", "warmup_steps=1", "precision=fp32", "threads=1",
            "progress=false", "val_fraction=0.25", "log_every=1", "val_every=100000", "save_every=100000",
            f"out_dir={out}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([*args, "steps=100000"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list((out / "tb").glob("events.*")):
            time.sleep(0.5)
        time.sleep(3.0)  # some steps
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: saved" in stderr
    steps = sorted(int(p.name.split("-")[1]) for p in out.glob("ckpt-*"))
    assert steps and steps[-1] > 0, list(out.iterdir())
    resumed = subprocess.run([*args, f"steps={steps[-1] + 2}"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"at step {steps[-1]} of {steps[-1] + 2}" in resumed.stderr
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    # The same progress.jsonl as gen0 posttrain: both runs' events, the resumed steps last.
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    steps_logged = [e["step"] for e in events if e["event"] == "step"]
    assert steps_logged[-1] == steps[-1] + 2 and {"checkpoint", "validation"} <= {e["event"] for e in events}


def test_a_trainer_that_reads_its_datasets_holds_their_frames_once(tmp_path: Path) -> None:
    from gen0_policy.data.lerobot import LeRobotWriter

    with LeRobotWriter(tmp_path / "panda", make_embodiment("panda"), 10.0) as writer:
        for seed in range(4):
            writer.add_episode(make_episode("panda", seed))
    config = tiny_config(tmp_path / "run", datasets=[{"path": str(tmp_path / "panda")}], val_fraction=0.25)
    trainer = Trainer(config, None, robots())
    owned = [e for s in trainer.train_sources + trainer.val_sources for e in s.episodes]
    assert len(owned) == 4 and all(e.images == {} for e in owned)  # the prepared copies are all it keeps
    assert np.isfinite(trainer.train_step()["loss"]) and all(np.isfinite(v) for v in trainer.validate().values())
    assert trainer.validate()
    given = sources()
    Trainer(tiny_config(tmp_path / "given"), given, robots())
    assert all(e.images for s in given for e in s.episodes)  # a caller's episodes are left as they were
