"""The MuJoCo env: the right robots with the right joints, seeded resets, position control that
tracks, bad commands refused, and camera frames a person would recognise."""

from __future__ import annotations

import matplotlib
import mujoco
import numpy as np
import pytest

from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import CommandError, ConfigError
from gen0_policy.sim import available_tasks, make_env
from gen0_policy.sim.assets import model_file

matplotlib.use("Agg")
import matplotlib.image

EMBODIMENTS = ["ur5e", "panda", "g1"]


@pytest.fixture(scope="module")
def envs():
    made = {name: make_env(name, "reach", seed=0, camera_size=(96, 72)) for name in EMBODIMENTS}
    yield made
    for env in made.values():
        env.close()


def test_dof_and_grippers():
    ur5e, panda, g1 = (load_embodiment(n) for n in EMBODIMENTS)
    assert (ur5e.dof, int(ur5e.gripper_mask.sum())) == (7, 1)
    assert (panda.dof, int(panda.gripper_mask.sum())) == (8, 1)
    assert g1.dof >= 16 and g1.dof == 31
    for emb in (ur5e, panda):
        assert emb.gripper_mask[-1] and not emb.gripper_mask[:-1].any()  # arm joints, then the gripper


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_yaml_joints_match_the_mujoco_model(envs, name):
    env = envs[name]
    emb, model = env.embodiment, env.model
    # The robot's own MJCF, parsed independently of our scene builder.
    source = mujoco.MjSpec.from_file(str(model_file(emb.sim["model"]["package"], emb.sim["model"]["file"])))
    source_names = {j.name for j in source.joints}
    for joint in emb.joints:
        compiled = model.joint(joint.name)  # raises KeyError if the name is wrong
        lo, hi = model.jnt_range[compiled.id]
        if joint.gripper and name != "g1":  # a gripper's action range may be a sub-range (2F-85: 0..0.8 of 0..0.9)
            assert lo - 1e-9 <= joint.lower < joint.upper <= hi + 1e-9
        else:
            assert (joint.lower, joint.upper) == pytest.approx((lo, hi), abs=1e-4)
        if joint.name in source_names:
            assert tuple(source.joint(joint.name).range) == pytest.approx((lo, hi), abs=1e-9)
    # Every hinge or slide joint of the robot is an action joint or driven by one (gripper linkages).
    assert model.nu == emb.dof


def test_reset_is_deterministic_per_seed():
    env = make_env("panda", "pick_place", seed=3)
    first = (env.data.qpos.copy(), env.instruction)
    env.set_targets(np.clip(env.embodiment.home + 0.2, env.embodiment.lower, env.embodiment.upper))
    env.step(0.3)
    env.reset(3)
    assert np.array_equal(env.data.qpos, first[0]) and env.instruction == first[1]
    assert env.time == 0.0
    env.reset(4)
    cube = env.model.joint("cube_joint").qposadr[0]
    assert not np.allclose(env.data.qpos[cube : cube + 3], first[0][cube : cube + 3])
    assert not env.success()


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_set_targets_moves_joints_there(envs, name):
    env = envs[name]
    emb = env.embodiment
    env.reset(0)
    rng = np.random.default_rng(1)
    target = emb.home + np.where(emb.gripper_mask, 0.0, rng.uniform(-0.25, 0.25, emb.dof))
    target[emb.gripper_mask] = emb.upper[emb.gripper_mask] if name == "ur5e" else emb.lower[emb.gripper_mask]
    target = np.clip(target, emb.lower, emb.upper)
    before = env.joint_positions()
    env.set_targets(target)
    env.step(1.5)
    after = env.joint_positions()
    moved = np.abs(target - before) > 0.05
    assert moved.sum() >= emb.dof // 2
    np.testing.assert_allclose(after[~emb.gripper_mask], target[~emb.gripper_mask], atol=0.02)
    assert np.all(np.abs(env.joint_velocities()) < 0.2)
    assert np.all(np.isfinite(env.joint_efforts()))
    if name != "g1":  # a closed gripper ends near its target
        gripper = emb.gripper_mask
        assert np.abs(after[gripper] - target[gripper]).max() < 0.05 * (emb.upper - emb.lower)[gripper].max() + 0.01


def test_bad_commands_are_refused_and_change_nothing(envs):
    env = envs["ur5e"]
    env.reset(0)
    held = env.targets
    with pytest.raises(CommandError, match="expects 7 targets"):
        env.set_targets(np.zeros(6))
    with pytest.raises(CommandError, match="NaN"):
        env.set_targets(np.full(7, np.nan))
    too_far = env.embodiment.home.copy()
    too_far[2] = 4.0  # elbow range is +-pi
    with pytest.raises(CommandError, match="elbow_joint"):
        env.set_targets(too_far)
    assert np.array_equal(env.targets, held)
    with pytest.raises(ConfigError, match="available tasks"):
        make_env("ur5e", "juggle")
    with pytest.raises(ConfigError, match="g1 can do"):
        make_env("g1", "stack")


def test_step_advances_sim_time_by_the_duration(envs):
    env = envs["panda"]
    env.reset(0)
    env.step()
    assert env.time == pytest.approx(env.control_dt)
    env.step(0.25)
    assert env.time == pytest.approx(0.26)
    env.step(0.004)  # less than a control period: physics steps only
    assert env.time == pytest.approx(0.264)


@pytest.mark.parametrize("name", EMBODIMENTS)
def test_saved_frames_are_not_blank(envs, name, tmp_path):
    env = envs[name]
    env.reset(0)
    obs = env.observation()
    assert set(obs["images"]) == {c.name for c in env.embodiment.cameras}
    for cam, frame in obs["images"].items():
        assert frame.shape == (72, 96, 3) and frame.dtype == np.uint8
        path = tmp_path / f"{name}_{cam}.png"
        matplotlib.image.imsave(path, frame)
        back = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(np.uint8)
        np.testing.assert_array_equal(back, frame)
        colours = len(np.unique(back.reshape(-1, 3), axis=0))
        assert back.std() > 15 and colours > 100, f"{name}/{cam} looks blank: std {back.std():.1f}, {colours} colours"
    big = env.render("scene", 320, 240)
    assert big.shape == (240, 320, 3) and big.std() > 15


def test_every_task_exists_for_its_embodiments():
    assert len(available_tasks()) >= 6
    assert set(available_tasks("ur5e")) == set(available_tasks("panda"))
    assert len(available_tasks("g1")) >= 2 and "press_buttons" in available_tasks("g1")


def test_renders_without_a_display_or_a_chosen_backend() -> None:
    """`ros2 launch` of the sim node on a headless machine: no DISPLAY and no MUJOCO_GL. The simulator
    package picks offscreen EGL itself (it once fell to GLFW and the camera thread died)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL")}
    code = (
        "from gen0_policy.sim import make_env\n"
        "env = make_env('panda', 'reach', 0)\n"
        "frames = env.observation()['images']\n"
        "print(sorted((k, v.shape, int(v.max())) for k, v in frames.items()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "('scene', (240, 320, 3)" in out.stdout and "('wrist', (240, 320, 3)" in out.stdout


def test_the_place_a_grasped_object_goes_is_the_one_success_checks():
    """Stack's place is the bottom cube (it can be pushed), pick_place's the pad; reach has none."""
    with make_env("panda", "stack") as env:
        env.reset(4)
        model, data = env.model, env.data
        np.testing.assert_array_equal(env.task.place_target(model, data), data.body("bottom").xpos)
    with make_env("panda", "pick_place") as env:
        env.reset(4)
        pad = env.task.place_target(env.model, env.data)
        np.testing.assert_allclose(pad[:2], env.task.targets["goal"][:2])
    with make_env("panda", "reach") as env:
        env.reset(4)
        assert env.task.place_target(env.model, env.data) is None
