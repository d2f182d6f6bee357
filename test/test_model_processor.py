"""The mirrored transforms around the network: per-robot statistics, normalize -> pad on the way in
and unpad -> unnormalize on the way out (a round trip), masks and camera slots, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from model_fixtures import ROBOTS, make_embodiment

from gen0_policy.errors import CheckpointError, DatasetError, ObservationError
from gen0_policy.model.config import CAMERA_ROLES, preset
from gen0_policy.model.processor import MIN_STD, JointStats, Processor

CONFIG = preset("test", language_encoder="hash")
RNG = np.random.default_rng(0)


def stats_for(dof: int, seed: int = 0) -> JointStats:
    rng = np.random.default_rng(seed)
    states, actions = rng.normal(0.3, 0.5, (200, dof)), rng.normal(-0.2, 0.7, (200, dof))
    actions[:, 0] = 0.25  # a joint that never moved
    return JointStats.from_arrays(states, actions)


def processor() -> Processor:
    robots = [make_embodiment(n) for n in ROBOTS]
    return Processor(CONFIG, robots, {e.name: stats_for(e.dof, i) for i, e in enumerate(robots)})


def test_joint_stats_from_arrays_are_mean_and_floored_std() -> None:
    states, actions = RNG.normal(1.0, 2.0, (100, 3)), RNG.normal(size=(100, 3))
    actions[:, 2] = 5.0
    stats = JointStats.from_arrays(states, actions)
    np.testing.assert_allclose(stats.state_mean, states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats.state_std, states.std(0), rtol=1e-6)
    assert stats.action_std[2] == pytest.approx(MIN_STD) and stats.action_mean[2] == pytest.approx(5.0)
    assert stats.dof == 3 and all(getattr(stats, k).dtype == np.float32 for k in JointStats._keys())
    again = JointStats.from_dict(stats.to_dict())  # as stored in a checkpoint's normalization.json
    assert all(np.array_equal(getattr(again, k), getattr(stats, k)) for k in JointStats._keys())
    with pytest.raises(DatasetError, match="NaN or inf"):
        JointStats.from_arrays(np.full((4, 3), np.nan), actions[:4])
    with pytest.raises(CheckpointError, match="four"):
        JointStats(np.zeros(3), np.ones(2), np.zeros(3), np.ones(3))
    with pytest.raises(CheckpointError, match="lack 'action_std'"):
        JointStats.from_dict({"state_mean": [0.0], "state_std": [1.0], "action_mean": [0.0]})
    with pytest.raises(DatasetError, match="need mean and std"):
        JointStats.from_stats({"mean": [0.0]}, {"mean": [0.0], "std": [1.0]})


@pytest.mark.parametrize("name", sorted(ROBOTS))
def test_normalize_pad_and_back_is_a_round_trip(name: str) -> None:
    proc = processor()
    dof = proc.embodiment(name).dof
    actions = RNG.normal(size=(CONFIG.chunk_size, dof)).astype(np.float32)
    normalized = proc.normalize_actions(name, actions)
    assert normalized.shape == (CONFIG.chunk_size, CONFIG.max_dof)
    assert np.all(normalized[:, dof:] == 0), "padding is zero"
    np.testing.assert_allclose(proc.unnormalize_actions(name, normalized), actions, rtol=1e-5, atol=1e-5)
    # Normalized data of the robot's own distribution has zero mean and unit spread (where it moves).
    s = proc.stats[name]
    sample = s.state_mean + s.state_std * RNG.normal(size=(20000, dof)).astype(np.float32)
    z = proc.normalize_state(name, sample)[:, :dof]
    np.testing.assert_allclose(z.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(z.std(0), 1, atol=0.03)
    assert proc.dof_mask(name).sum() == dof and proc.dof_mask(name)[:dof].all()
    np.testing.assert_array_equal(proc.action_scale(name), s.action_std)


def test_camera_slots_follow_the_robot_then_names() -> None:
    proc = processor()
    wrist, scene = CAMERA_ROLES.index("wrist"), CAMERA_ROLES.index("scene")
    assert proc.camera_layout("panda", ["wrist", "scene"]) == [("scene", scene), ("wrist", wrist)]
    assert proc.camera_layout("panda", ["zzz", "wrist"]) == [("wrist", wrist), ("zzz", 0)]
    assert len(proc.camera_layout("panda", ["a", "b", "c", "scene"])) == CONFIG.max_cameras


def test_observation_tensors_and_masks() -> None:
    proc = processor()
    robot = proc.embodiment("ur5e")
    joints = np.linspace(-0.5, 0.5, robot.dof).astype(np.float32)
    frame = np.zeros((CONFIG.image_size, CONFIG.image_size, 3), np.uint8)
    obs = {"embodiment": "ur5e", "joint_positions": joints, "images": {"scene": frame}}
    batch = proc.observation(obs, np.ones(CONFIG.language_dim, np.float32))
    assert batch["images"].shape == (1, CONFIG.max_cameras, 3, CONFIG.image_size, CONFIG.image_size)
    assert batch["camera_mask"].tolist() == [[True, False]]  # only one of two slots filled
    assert batch["embodiment"].item() == proc.ids["ur5e"]
    np.testing.assert_allclose(batch["state"][0].numpy(), proc.normalize_state("ur5e", joints))
    both = proc.observation({**obs, "images": {"scene": frame, "wrist": frame}}, np.ones(CONFIG.language_dim))
    assert "camera_mask" not in both  # all slots filled
    for bad, words in [
        ({"joint_positions": joints[:-1]}, "must have shape"),
        ({"joint_positions": np.full(robot.dof, np.nan)}, "NaN"),
        ({"embodiment": None}, "needs 'embodiment'"),
        ({"images": {"scene": frame.astype(np.float32)}}, "uint8"),
    ]:
        with pytest.raises(ObservationError, match=words):
            proc.observation({**obs, **bad}, np.ones(CONFIG.language_dim))


def test_processor_refuses_what_the_model_cannot_hold() -> None:
    robots = [make_embodiment(n) for n in ROBOTS]
    stats = {e.name: stats_for(e.dof) for e in robots}
    with pytest.raises(CheckpointError, match="not trained on embodiment 'kuka'"):
        processor().embodiment("kuka")
    with pytest.raises(CheckpointError, match="no normalization stats for embodiment panda"):
        Processor(CONFIG, robots, {k: v for k, v in stats.items() if k != "panda"})
    with pytest.raises(CheckpointError, match="stats of panda have 6 joints"):
        Processor(CONFIG, robots, {**stats, "panda": stats_for(6)})
    with pytest.raises(CheckpointError, match="pads to 16"):
        Processor(CONFIG.with_overrides(max_dof=16), robots, stats)
    with pytest.raises(CheckpointError, match="embodiment slots"):
        Processor(CONFIG.with_overrides(embodiment_slots=2), robots, stats)
