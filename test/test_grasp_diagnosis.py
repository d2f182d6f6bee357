"""benchmarks/grasp_diagnosis.py: the phases of a grasping episode, read from the simulator's truth."""

from __future__ import annotations

import importlib.util

import numpy as np

from conftest import REPO
from gen0_policy.sim.env import make_env
from gen0_policy.sim.policies import make_controller


def _module():
    spec = importlib.util.spec_from_file_location("grasp_diagnosis", REPO / "benchmarks" / "grasp_diagnosis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_release_is_the_first_opening_after_the_lift() -> None:
    release = _module()._release_index
    cmd = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.9, 0.9])  # 0 closed .. 1 open
    rise = np.array([0.0, 0.0, 0.0, 0.01, 0.05, 0.1, 0.1, 0.0])
    assert release(cmd, rise, first_close=2) == 6
    assert release(cmd, np.zeros(8), first_close=2) is None  # never lifted: no place phase
    assert release(np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.05, 0.05]), first_close=1) is None  # never let go
    assert release(cmd, rise, first_close=None) is None


def test_the_expert_stacks_with_every_phase_measured() -> None:
    diagnosis = _module()
    with make_env("panda", "stack", seed=100) as env:
        e = diagnosis.episode(env, make_controller("expert"), seed=100)
    assert e["success"] and e["lifted"] and e["release_time_s"] > e["close_time_s"]
    assert e["xy_at_close_m"] < 0.01 and e["object_off_hand_xy_at_release_m"] < 0.01
    # Released over the bottom cube: the object and the hand within the task's 2 cm of it.
    assert e["object_to_target_xy_at_release_m"] < 0.02 and e["hand_to_target_xy_at_release_m"] < 0.02
    bottom = env.task.targets["bottom"][:2]
    assert np.allclose(e["target_xy_m"], bottom, atol=0.01)
    assert e["target_moved_before_release_m"] < 0.002  # the expert never pushes the bottom cube
    assert e["target_moved_1cm_at_s"] is None and e["object_over_target_z_when_moved_m"] is None
    summary = diagnosis.summarize([e])
    assert summary["released_after_lift"] == 1 and summary["success"] == 1
    assert summary["target_moved_over_1cm_before_release"] == 0
    knocked = {**e, "target_moved_before_release_m": 0.05}
    assert diagnosis.summarize([e, knocked])["target_moved_over_1cm_before_release"] == 1
    assert summary["tracking_at_release"] is None  # a slope needs three episodes
    assert abs(e["pick_to_place_xy_m"] - np.linalg.norm(np.array(e["object_xy_m"]) - bottom)) < 0.01
    assert abs(e["release_short_along_carry_m"]) < 0.02 and abs(e["release_across_carry_m"]) < 0.02


def test_a_release_short_of_the_target_is_measured_along_the_carry() -> None:
    diagnosis = _module()
    start, target = np.array([0.4, 0.0]), np.array([0.4, 0.2])  # carried 20 cm along +y
    short = diagnosis._along_carry(start, target, np.array([0.41, 0.15]))  # 5 cm short, 1 cm right of the line
    assert short == {"release_short_along_carry_m": 0.05, "release_across_carry_m": -0.01}
    assert diagnosis._along_carry(start, target, np.array([0.4, 0.23]))["release_short_along_carry_m"] == -0.03
    assert diagnosis._along_carry(start, target, None)["release_short_along_carry_m"] is None
    episodes = [
        {"pick_to_place_xy_m": d, "success": ok} for d, ok in [(0.12, False), (0.13, False), (0.2, True), (0.25, False)]
    ]
    split = diagnosis.by_carry_length(episodes)
    assert split == {"median_pick_to_place_xy_m": 0.165, "success_shorter_half": "0/2", "success_longer_half": "1/2"}


def test_the_goal_head_points_at_the_cube_to_grasp_first() -> None:
    """Read through the shipped checkpoint's goal head and the arm's kinematics, the predicted hand
    position at the start is the grasp's (the next keyframe), not the place's; the expert has none."""
    diagnosis = _module()
    misses = []
    with make_env("panda", "stack", seed=100) as env:
        policy = make_controller(str(REPO / "checkpoints" / "multitask_cpu"))
        for seed in (100, 101, 103):
            env.reset(seed)
            policy.reset(env)
            hand = diagnosis.GoalReader(policy, env)(env.observation())
            top, bottom = env.data.body("top").xpos[:2], env.data.body("bottom").xpos[:2]
            misses.append(np.linalg.norm(hand[:2] - top))
            assert misses[-1] < np.linalg.norm(hand[:2] - bottom)
        assert diagnosis.GoalReader(make_controller("expert"), env)(env.observation()) is None
    assert np.mean(misses) < 0.03


def test_goal_errors_are_split_by_the_hands_distance_from_the_target() -> None:
    errors = _module()._goal_errors
    target = np.zeros((4, 2))
    tcp = np.array([[0.2, 0.0, 0.1], [0.1, 0.0, 0.1], [0.03, 0.0, 0.1], [0.0, 0.0, 0.05]])
    goals = [np.array([0.01, 0.0, 0.0]), None, np.array([0.0, 0.02, 0.0]), np.array([0.0, 0.04, 0.0])]
    rise = np.array([0.1, 0.1, 0.1, 0.1])
    assert errors(goals, tcp, target, range(4), rise) == (0.01, 0.03)  # far: step 0; near: steps 2, 3
    assert errors(goals, tcp, target, range(4), np.zeros(4)) == (None, None)  # never lifted
