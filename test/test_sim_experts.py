"""Tasks and scripted experts: each success check is false at reset and true after the expert,
the expert acts only through joint targets, and recorded episodes are consistent."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.errors import ConfigError
from gen0_policy.sim import available_tasks, experts, make_env
from gen0_policy.sim.experts import make_expert
from gen0_policy.sim.ik import DifferentialIK
from gen0_policy.sim.policies import ExpertController
from gen0_policy.sim.rollout import ActionNoise, RolloutConfig, run_episode
from gen0_policy.sim.tasks import TASKS

PAIRS = [(emb, task) for emb in ("ur5e", "panda", "g1") for task in available_tasks(emb)]


@pytest.mark.parametrize(("embodiment", "task"), PAIRS)
def test_expert_solves_the_task(embodiment, task):
    env = make_env(embodiment, task, seed=0)
    expert = make_expert(env)
    for seed in (11, 12):
        env.reset(seed)
        assert not env.success(), "a task must not be solved at reset"
        assert env.instruction in TASKS[task].instructions
        result = run_episode(env, expert, seed, RolloutConfig(linger=0.0))
        assert result.success, f"{embodiment}/{task} seed {seed} failed after {result.seconds:.2f} s"
        assert result.seconds <= TASKS[task].max_duration
        assert env.success()
    env.close()


def test_expert_acts_only_through_targets():
    env = make_env("panda", "stack", seed=2)
    expert = make_expert(env)
    before = (env.data.qpos.copy(), env.data.qvel.copy(), env.data.ctrl.copy(), env.time)
    for _ in range(5):
        targets = expert.act({"time": env.time, "joint_positions": env.joint_positions()})
        assert targets.shape == (env.embodiment.dof,) and env.embodiment.within_limits(targets)
    after = (env.data.qpos, env.data.qvel, env.data.ctrl, env.time)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(("embodiment", "task"), [("panda", "pick_place"), ("ur5e", "stack"), ("g1", "press_buttons")])
def test_demonstrations_stay_within_the_robots_limits(embodiment, task):
    """What a robot (and the runtime's safety filter) allows is what the data shows: an expert whose
    wrist turned at 30x its limit taught grasps that the runtime then had to slow down and missed."""
    env = make_env(embodiment, task, seed=0)
    emb, dt = env.embodiment, env.control_dt
    env.reset(13)
    expert = make_expert(env)
    targets = [emb.home]
    while env.time < expert.duration + expert.held_s:
        targets.append(expert.act({"time": env.time, "joint_positions": env.joint_positions()}))
        env.set_targets(targets[-1])
        env.step()
    velocity = np.diff(np.array(targets), axis=0) / dt
    acceleration = np.diff(velocity, axis=0) / dt
    slack = 1 + 1e-6
    assert np.all(np.abs(velocity) <= emb.velocity_limits * slack), np.max(np.abs(velocity) / emb.velocity_limits)
    assert np.all(np.abs(acceleration) <= emb.acceleration_limits * slack)
    assert np.max(np.abs(velocity) / emb.velocity_limits) > 0.5  # it did move, and briskly
    env.close()


def test_ik_reaches_a_reachable_pose():
    env = make_env("ur5e", "reach", seed=0)
    emb = env.embodiment
    arm = [j.name for j in emb.joints if not j.gripper]
    ik = DifferentialIK(env.model, emb, "tcp", arm)
    rng = np.random.default_rng(0)
    goal_q = emb.home + np.where(emb.gripper_mask, 0.0, rng.uniform(-0.3, 0.3, emb.dof))
    position, rotation = ik.forward(goal_q)
    q = ik.solve(emb.home, position, rotation, iterations=100)
    got_position, got_rotation = ik.forward(q)
    np.testing.assert_allclose(got_position, position, atol=1e-3)
    np.testing.assert_allclose(got_rotation, rotation, atol=1e-2)


def test_an_episode_can_run_on_past_success_with_a_measurement_each_step():
    """benchmarks/reach_settle.py: does the hand stay on the target once it got there?"""
    env = make_env("panda", "reach", seed=0)
    times: list[float] = []
    config = RolloutConfig(max_duration=2.5, stop_at_success=False)
    result = run_episode(env, make_expert(env), 11, config, lambda e: times.append(e.time))
    assert result.success and result.seconds < 2.0  # the success is still reported when it came
    assert len(times) == round(2.5 / env.control_dt) and times[-1] == pytest.approx(env.time)  # every step, to the end
    env.close()


def test_recorded_episode_is_consistent():
    env = make_env("ur5e", "press_button", seed=0, camera_size=(64, 48))
    expert = make_expert(env)
    result = run_episode(env, expert, 5, RolloutConfig(record_fps=20, image_size=(64, 48)))
    episode = result.episode
    assert result.success and episode.success and episode.task == "press_button"
    assert episode.fps == 20 and episode.embodiment == "ur5e"
    total_steps = result.steps + round(0.3 / env.control_dt)  # linger after success
    assert len(episode) == -(-total_steps // 5)  # one frame every 5 control steps
    assert episode.states.shape == episode.actions.shape == (len(episode), 7)
    assert set(episode.images) == {"scene", "wrist"}
    assert episode.images["wrist"].shape == (len(episode), 48, 64, 3)
    # The actions lead the states: the commanded gripper closes before the measured one does.
    closed_action = np.argmax(episode.actions[:, -1] > 0.4)
    closed_state = np.argmax(episode.states[:, -1] > 0.4)
    assert episode.actions[closed_action, -1] > 0.4 and closed_action < closed_state


def test_action_noise_executes_off_the_expert_path_and_records_the_expert():
    """DART-style demonstrations: the arm is pushed off the plan, the labels stay the expert's; the same
    seed gives the same episode, the gripper is never perturbed, and a bad setting is refused."""
    env = make_env("panda", "reach", seed=0, camera_size=(32, 24))
    expert = make_expert(env)
    clean = run_episode(env, expert, 7, RolloutConfig(record_fps=20, image_size=(32, 24)))
    noisy = [run_episode(env, expert, 7, RolloutConfig(record_fps=20, image_size=(32, 24), action_noise_rad=0.02))
             for _ in range(2)]  # fmt: skip
    a, b = (r.episode for r in noisy)
    np.testing.assert_array_equal(a.states, b.states)  # seeded: reproducible
    n = min(len(clean.episode), len(a))
    # The recorded actions are the expert's (its plan does not look at the arm) ...
    np.testing.assert_allclose(a.actions[:n], clean.episode.actions[:n], atol=1e-9)
    # ... while the arm went elsewhere, by about the noise's size, and the gripper was left alone.
    drift = np.abs(a.states[:n, :7] - clean.episode.states[:n, :7]).max()
    assert 0.005 < drift < 0.2
    np.testing.assert_allclose(a.states[:n, 7], clean.episode.states[:n, 7], atol=1e-3)
    assert a.metadata["action_noise_rad"] == 0.02
    with pytest.raises(ConfigError, match="action noise"):
        RolloutConfig(action_noise_rad=float("nan"))


def test_a_grasp_waits_above_the_object_until_the_measured_hand_is_there():
    """The expert closes when its fingers are around the object, not at a time: the plan holds above
    the cube while the measured hand is elsewhere (gripper open), goes on once it is there, and gives up
    waiting after GATE_MAX_S."""
    env = make_env("panda", "pick_place", seed=0, camera_size=(32, 24))
    env.reset(3)
    assert not make_expert(env).gates  # off by default: the grasps of the shipped checkpoint's data
    expert = make_expert(env, grasp_gate_m=0.005)
    gate, dt = expert.gates[0], env.control_dt
    np.testing.assert_allclose(gate.position[:2], env.task.targets["cube"][:2], atol=1e-9)
    assert gate.position[2] > env.task.targets["cube"][2] + experts.GATE_HEIGHT_M - 1e-6

    def act(t: float, measured: np.ndarray) -> np.ndarray:
        return expert.act({"time": t, "joint_positions": measured})

    q, t = env.embodiment.home.copy(), 0.0
    while t < gate.t:  # a robot that tracks perfectly
        q, t = act(t, q), t + dt
    for _ in range(50):  # the arm is pushed away: the plan holds, the gripper stays open
        held = act(t, env.embodiment.home)
        t += dt
    assert expert.settling and expert.held_s == pytest.approx(0.5, abs=2 * dt)
    hand = expert.iks[0].forward
    assert np.linalg.norm(hand(held)[0] - gate.position) < 0.002 and held[7] == pytest.approx(0.04)
    for _ in range(30):  # back where it should be: the gate opens, the plan goes on
        q, t = act(t, q), t + dt
    assert gate.passed and expert.held_s < 0.8
    closing = t
    while q[7] > 0.02:
        q, t = act(t, q), t + dt
    assert t - closing < 1.5 and expert.settling  # calm from the gate through the close
    # A hand that never gets there: after GATE_MAX_S the release gate lets the plan go on regardless.
    release = expert.gates[1]
    while t - expert.held_s < release.t:
        q, t = act(t, q), t + dt
    start_held = expert.held_s
    for _ in range(round((experts.GATE_MAX_S + 0.2) / dt)):
        act(t, env.embodiment.home)
        t += dt
    assert release.passed and expert.held_s - start_held == pytest.approx(experts.GATE_MAX_S, abs=2 * dt)


@pytest.mark.parametrize(
    ("task", "option", "grasped", "seeds"),
    [("pick_place", {"grasp_gate_m": 0.005}, "cube", (11, 12)), ("stack", {"funnel_slope": 1.5}, "top", (5002, 5004))],
)
def test_demonstrations_with_recoveries_close_the_gripper_only_over_the_object(task, option, grasped, seeds):
    """With the arm pushed off the plan (action noise), every grasp in the data is commanded with the
    measured hand over the cube, as `gen0 sim collect --grasp-gate-mm 5` (the perturbation dies away
    while the expert waits there) or `--funnel-slope 1.5` (the hand comes down only over the cube)
    drive the expert, and the task succeeds."""
    env = make_env("panda", task, seed=0, camera_size=(32, 24))
    controller = ExpertController(**option)
    ik = DifferentialIK(env.model, env.embodiment, "tcp", list(env.embodiment.joint_names[:7]))
    for seed in seeds:
        result = run_episode(
            env, controller, seed, RolloutConfig(record_fps=20, image_size=(32, 24), action_noise_rad=0.02)
        )
        assert result.success
        ep = result.episode
        close = int(np.argmax(ep.actions[:, 7] < 0.02))
        hand, _ = ik.forward(ep.states[close])
        assert np.linalg.norm(hand[:2] - env.task.targets[grasped][:2]) < 0.01
        if controller.expert.gates:
            gate = controller.expert.gates[0]
            assert gate.passed and 0 < gate.waited_s < 1.0  # the arm settled: no need to wait it out


def test_a_funnel_keeps_a_hand_that_is_off_the_object_above_it():
    """Going down to a grasp, the commanded hand stays slope x (its measured distance off the point)
    above it, never above the hover height, and the perturbation calms; on the point it goes down as
    planned, and outside the descents nothing changes."""
    env = make_env("panda", "stack", seed=0, camera_size=(32, 24))
    env.reset(3)
    assert not make_expert(env).funnels  # off by default: the shipped checkpoint's data
    with pytest.raises(ConfigError, match="funnel slope"):
        make_expert(env, funnel_slope=-1.0)
    expert = make_expert(env, funnel_slope=1.5)
    grasp, release = expert.funnels
    np.testing.assert_allclose(grasp.point[:2], env.task.targets["top"][:2], atol=1e-9)
    np.testing.assert_allclose(release.point[:2], env.task.targets["bottom"][:2], atol=1e-9)
    t = (grasp.t_start + grasp.t_end) / 2
    planned = expert.plans[0].at(t)[0]
    hand = expert.iks[0].forward
    home = hand(env.embodiment.home)[0]  # a measured hand far off the cube
    raised = expert._funnel(0, t, planned, {"joint_positions": env.embodiment.home})
    off_m = float(np.linalg.norm(home[:2] - grasp.point[:2]))
    assert raised[2] == pytest.approx(min(env.layout.hover, grasp.point[2] + 1.5 * off_m))
    assert raised[2] > planned[2] and expert.settling
    np.testing.assert_allclose(raised[:2], planned[:2])
    q = env.embodiment.home.copy()
    for _ in range(300):  # differential IK: one step per call
        q = expert.iks[0].solve(q, grasp.point, expert.rotations[0], posture=env.embodiment.home)
    off_m = float(np.linalg.norm(hand(q)[0][:2] - grasp.point[:2]))
    assert off_m < 0.002  # a measured hand right over the cube
    on = expert._funnel(0, t, planned, {"joint_positions": q})
    assert on[2] == pytest.approx(max(planned[2], grasp.point[2] + 1.5 * off_m)) and on[2] < planned[2] + 0.003
    before = expert.plans[0].at(grasp.t_start - 0.1)[0]
    np.testing.assert_array_equal(expert._funnel(0, grasp.t_start - 0.1, before, {"joint_positions": q}), before)


def test_calm_action_noise_decays_to_nothing():
    env = make_env("panda", "reach", seed=0, camera_size=(32, 24))
    noise = ActionNoise.for_arm(env, RolloutConfig(action_noise_rad=0.02), seed=1)
    q = env.embodiment.home
    for _ in range(300):
        noise(q)
    before = np.abs(noise.offset).max()
    for _ in range(100):  # 1 s at 100 Hz, 2.5 time constants
        out = noise(q, calm=True)
    assert before > 0.005 and np.abs(noise.offset).max() < 0.1 * before
    np.testing.assert_allclose(out[:7], q[:7] + noise.offset, atol=1e-12)
