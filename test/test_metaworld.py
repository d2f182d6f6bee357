"""Meta-World through the project's pipeline (issue 15): the Sawyer's end-effector action space, the
env adapter (observations, upright cameras), expert collection into LeRobot v3, and the benchmark's
evaluation bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import ConfigError, EmbodimentError


# -- the embodiment -------------------------------------------------------------------------------
def test_sawyer_description_loads_and_says_its_action_space():
    e = load_embodiment("sawyer")
    assert e.action_space == "end_effector_delta" and not e.joint_space
    assert e.dof == 4 and e.joint_names == ("hand_x", "hand_y", "hand_z", "gripper_opening")
    assert e.action_names == ("delta_x", "delta_y", "delta_z", "grab_effort")
    np.testing.assert_array_equal(e.action_lower, -1.0)
    np.testing.assert_array_equal(e.action_upper, 1.0)
    assert e.within_limits(e.home)
    assert [c.name for c in e.cameras] == ["corner2", "gripperPOV"]
    assert Embodiment.from_dict(e.to_dict()) == e  # checkpoints carry it
    panda = load_embodiment("panda")
    assert panda.joint_space and panda.action_names == panda.joint_names and "action" not in panda.to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": None}, "needs an 'action' section"),
        ({"action": {"names": ["a"], "lower": [-1], "upper": [1], "scale": [0.01]}}, "action has 1 entries"),
        ({"action": {"names": ["a", "b"], "lower": [-1], "upper": [1], "scale": [0.1]}}, "one equal, non-zero"),
        ({"action_space": "joint_position"}, "remove it or set action_space"),
    ],
)
def test_end_effector_descriptions_validated(change, message):
    data = load_embodiment("sawyer").to_dict() | change
    with pytest.raises(EmbodimentError, match=message):
        Embodiment.from_dict(data)


def test_action_space_mapping_round_trip():
    """An action -> the target it sends the hand to -> the same action, for every in-bounds action;
    out-of-bounds actions come back clipped, as Meta-World clips them."""
    spec = load_embodiment("sawyer").action
    rng = np.random.default_rng(0)
    state = np.array([0.05, 0.6, 0.2, 0.8])
    for _ in range(100):
        action = rng.uniform(-1, 1, 4)
        targets = spec.to_targets(state, action)
        np.testing.assert_allclose(targets[:3], state[:3] + 0.01 * action[:3])
        assert targets[3] == action[3]  # the gripper effort is a command, not a displacement
        np.testing.assert_allclose(spec.from_targets(state, targets), action, atol=1e-12)
    np.testing.assert_allclose(spec.from_targets(state, state + np.array([0.5, 0, 0, 0]))[:3], [1.0, 0, 0])
    np.testing.assert_allclose(spec.to_targets(state, [3, 0, 0, 0])[0], state[0] + 0.01)


def test_joint_space_only_paths_refuse_an_end_effector_robot():
    from gen0_policy.runtime.safety import SafetyLimits
    from gen0_policy.runtime.teleop import LeaderMirror
    from gen0_policy.sim.env import make_env

    sawyer = load_embodiment("sawyer")
    with pytest.raises(EmbodimentError, match="joint-position robots only; embodiment sawyer takes end_effector"):
        LeaderMirror(sawyer)
    with pytest.raises(EmbodimentError, match="collect-metaworld"):
        make_env("sawyer", "reach")
    # The safety filter works in the Sawyer's state coordinates: the hand's workspace in m, 0.8 m/s.
    limits = SafetyLimits.from_embodiment(sawyer)
    np.testing.assert_allclose(limits.lower[:3], [-0.525, 0.348, -0.0525])
    np.testing.assert_allclose(limits.velocity[:3], 0.8)


def test_end_effector_chunks_become_absolute_targets_and_back():
    """The runtime streams absolute targets: displacement rows add up from the measured hand position,
    the gripper effort becomes an opening (-1 open = 1, +1 closed = 0); committed targets go back to the
    policy as the actions that reach them, and come out exactly as they went in."""
    from gen0_policy.runtime.end_effector import EndEffectorPlan, EndEffectorPolicy
    from gen0_policy.runtime.perception import COMMANDED
    from gen0_policy.runtime.policy import validate_output

    sawyer = load_embodiment("sawyer")
    plan = EndEffectorPlan(sawyer)
    rng = np.random.default_rng(1)
    state = np.array([0.0, 0.6, 0.2, 1.0])
    actions = rng.uniform(-1, 1, (8, 4))
    targets = plan.targets(state, actions)
    np.testing.assert_allclose(targets[:, :3], state[:3] + 0.01 * np.cumsum(actions[:, :3], axis=0))
    np.testing.assert_allclose(targets[:, 3], (1 - actions[:, 3]) / 2)
    np.testing.assert_allclose(plan.actions(state, targets), actions, atol=1e-9)
    np.testing.assert_allclose(plan.targets(state, [[5.0, 0, 0, -3.0]])[0], [0.01, 0.6, 0.2, 1.0])  # clipped

    class Displacements:
        chunk_size, step_dt, max_prefix, checkpoint_id = 8, 1 / 80, 4, "fake"

        def infer(self, observation, committed=None, num_samples=1):
            self.committed = committed
            out = np.tile([0.5, 0.0, -0.5, 1.0], (8, 1))
            if committed is not None:
                out[: len(committed)] = committed
            return {"actions": out, "action_space": "end_effector_delta", "uncertainty": float("nan")}

    inner = Displacements()
    with pytest.raises(Exception, match="end-effector displacements"):
        validate_output(inner.infer({}), 4)
    policy = EndEffectorPolicy(inner, sawyer)
    assert policy.chunk_size == 8 and policy.checkpoint_id == "fake"
    committed = plan.targets(state, actions[:3])
    out = policy.infer({"joint_positions": state}, committed)
    np.testing.assert_allclose(inner.committed, actions[:3], atol=1e-9)
    np.testing.assert_array_equal(out["actions"][:3], committed)
    np.testing.assert_allclose(out["actions"][3, :3], committed[2, :3] + [0.005, 0.0, -0.005])
    # A hand held back (the measured state lags): new rows go on from the last committed target.
    held = state + np.array([-0.02, 0.0, 0.0, 0.0])
    out = policy.infer({"joint_positions": held}, committed)
    np.testing.assert_allclose(out["actions"][3, :3], committed[2, :3] + [0.005, 0.0, -0.005])
    assert out["actions"][3, 3] == 0.0  # closing
    validate_output(out, 4)
    # Given the stream's last command (the runtime adds it), both a fresh plan and the committed rows'
    # actions start there, not at the lagging hand: a re-based plan gave up the target's lead at every
    # chunk, and the lag read as a first committed action the model never took.
    ahead = state + np.array([0.03, 0.0, -0.01, 0.0])
    out = policy.infer({"joint_positions": held, COMMANDED: ahead})
    np.testing.assert_allclose(out["actions"][0, :3], ahead[:3] + np.array([0.005, 0.0, -0.005]))
    policy.infer({"joint_positions": held, COMMANDED: ahead}, plan.targets(ahead, actions[:3]))
    np.testing.assert_allclose(inner.committed, actions[:3], atol=1e-9)
    with pytest.raises(EmbodimentError, match="needs no conversion"):
        EndEffectorPlan(load_embodiment("panda"))


def test_end_effector_sums_stop_at_the_workspace_as_the_robot_target_does():
    """Meta-World clips its mocap to the task's box every step, and the demonstrations press into its
    floor: a running sum that went on below it wound up (10 cm under the table in plate-slide) and a
    later lift moved nothing. Clipped row by row, the plan lifts at once, as the mocap does."""
    from gen0_policy.runtime.end_effector import EndEffectorPlan, EndEffectorPolicy
    from gen0_policy.runtime.perception import COMMANDED, WORKSPACE

    sawyer = load_embodiment("sawyer")
    plan = EndEffectorPlan(sawyer)
    lower, upper = np.array([-0.5, 0.4, 0.05, 0.0]), np.array([0.5, 1.0, 0.5, 1.0])
    state = np.array([0.0, 0.6, 0.065, 1.0])
    down, lift = [0.0, 0.0, -1.0, -1.0], [0.0, 0.0, 1.0, -1.0]
    actions = np.array([down, down, down, lift])
    # by hand: 0.065 -> 0.055 -> 0.05 (the floor) -> 0.05 -> 0.06
    np.testing.assert_allclose(plan.targets(state, actions, (lower, upper))[:, 2], [0.055, 0.05, 0.05, 0.06])
    # without a task's box, the embodiment's own bounds (z >= -0.0525) hold the sum
    np.testing.assert_allclose(plan.targets(state, actions)[:, 2], [0.055, 0.045, 0.035, 0.045])
    far = plan.targets(state, np.tile(down, (30, 1)))
    assert far[:, 2].min() == pytest.approx(sawyer.lower[2])

    class Pressing:
        chunk_size, step_dt, max_prefix, checkpoint_id = 4, 1 / 80, 2, "fake"

        def infer(self, observation, committed=None, num_samples=1):
            return {"actions": actions.copy(), "action_space": "end_effector_delta", "uncertainty": float("nan")}

    policy = EndEffectorPolicy(Pressing(), sawyer)
    out = policy.infer({"joint_positions": state, COMMANDED: state, WORKSPACE: (lower, upper)})
    np.testing.assert_allclose(out["actions"][:, 2], [0.055, 0.05, 0.05, 0.06])


def test_a_task_workspace_tightens_the_runtime_limits_and_never_widens_them():
    from gen0_policy.errors import ConfigError
    from gen0_policy.runtime import Runtime, RuntimeConfig
    from gen0_policy.runtime.safety import SafetyLimits

    sawyer = load_embodiment("sawyer")
    limits = SafetyLimits.from_embodiment(sawyer)
    box = limits.within([-0.5, 0.4, 0.05, -1.0], [0.5, 1.0, 0.5, 2.0])
    np.testing.assert_allclose(box.lower, [-0.5, 0.4, 0.05, 0.0])  # the gripper keeps its own 0..1
    np.testing.assert_allclose(box.upper, [0.5, 1.0, 0.5, 1.0])
    np.testing.assert_array_equal(box.velocity, limits.velocity)
    for lower, upper, message in (
        ([0, 0, 0], [1, 1, 1], "4 numbers each"),
        ([0, 0, np.nan, 0], [1, 1, 1, 1], "finite"),
        ([0.6, 0.4, 0.05, 0], [0.7, 1.0, 0.5, 1], "entry 0 leaves nothing"),
    ):
        with pytest.raises(ConfigError, match=message):
            limits.within(lower, upper)

    class Still:
        chunk_size, step_dt, max_prefix, checkpoint_id = 4, 1 / 80, 2, "fake"

    rt = Runtime(Still(), sawyer, RuntimeConfig(control_rate_hz=80.0))
    rt.set_workspace([-0.5, 0.4, 0.05, 0.0], [0.5, 1.0, 0.5, 1.0])
    assert rt.limits.lower[2] == rt.stream.safety.limits.lower[2] == rt.horizons.safety.limits.lower[2] == 0.05
    with pytest.raises(ConfigError):
        rt.set_workspace([0.0] * 4, [0.0] * 4)
    assert rt.limits.lower[2] == 0.05  # a refused box changes nothing
    rt.set_workspace((), ())  # an empty box (our MuJoCo worlds' status): the embodiment's limits again
    np.testing.assert_array_equal(rt.limits.lower, limits.lower)


def test_the_sim_server_drives_the_sawyer_through_its_controllers():
    """Meta-World behind gen0_sim_node's server: a Cartesian position target and a gripper opening,
    as the policy node sends them, move the hand there at Meta-World's speed (the hand frame the state
    reports, as a Cartesian controller tracks its tool frame); cameras come upright."""
    from gen0_policy.errors import ConfigError, Gen0Error
    from gen0_policy.sim.metaworld_env import upright
    from gen0_policy.sim.server import SimConfig, SimServer, SnapshotRenderer

    config = SimConfig(embodiment="sawyer", task="reach", update_rate=80.0, cameras=False, real_time_factor=0.0)
    states = []
    server = SimServer(config, on_state=lambda now, q, v, e: states.append((now, q.copy())))
    try:
        start = server.env.joint_positions()
        target = start[:3] + np.array([0.08, 0.0, 0.06])
        server.command_positions("cartesian_motion_controller", target)
        server.command_positions("gripper_controller", np.array([0.0]))
        tick = server.now()
        for _ in range(60):
            tick, _ = server.step(tick + 1 / 80)
        times = np.array([t for t, _ in states])
        np.testing.assert_allclose(np.diff(times), 1 / 80, rtol=1e-6)  # one Meta-World step per tick
        hand = states[-1][1]
        # the reported hand frame (tcp_center), not the mocap 3.8 mm above it, settles on the target
        np.testing.assert_allclose(hand[:3], target, atol=0.001)
        assert hand[3] < 0.5 * start[3]  # closed on nothing
        speeds = np.linalg.norm(np.diff([q[:3] for _, q in states], axis=0), axis=1, ord=np.inf) * 80
        assert speeds.max() < 1.0  # Meta-World's 0.01 m per step per axis, 0.8 m/s, plus the weld's lag
        with pytest.raises(Gen0Error, match="unknown task"):
            server.reset("fly", 0)
        status = server.reset("push", 3)
        assert status.task == "push" and status.seed == 3 and not status.success
        # An episode starts with the hand settled where its target holds it (Meta-World's reset leaves it
        # 4.6 mm off, and the policy's targets start from the measured hand), none of its 500 steps spent.
        mw = server.env._mw._env
        hand, weld = server.env.joint_positions()[:3], np.asarray(server.env.data.mocap_pos[0])
        assert server.env._mw.steps == 0 and mw.curr_path_length == 0
        np.testing.assert_allclose(hand - weld, [0.0, 0.0, -0.0038], atol=5e-4)
        tick = server.now()
        tick, _ = server.step(tick + 1 / 80)  # held: it stays
        np.testing.assert_allclose(server.env.joint_positions()[:3], hand, atol=1e-4)
        # the task's own box for the hand target (Meta-World's mocap box in the reported hand frame)
        below_weld = [0.0, 0.0, -0.0038]  # tcp_center rests 3.8 mm below the mocap's weld point
        np.testing.assert_allclose(np.subtract(status.workspace_lower[:3], mw.mocap_low), below_weld, atol=1e-3)
        np.testing.assert_allclose(np.subtract(status.workspace_upper[:3], mw.mocap_high), below_weld, atol=1e-3)
        assert (status.workspace_lower[3], status.workspace_upper[3]) == (0.0, 1.0)
        server.command_positions("cartesian_motion_controller", np.array([0.0, 0.6, -0.05]))  # under its floor
        tick = server.now()
        for _ in range(40):
            tick, _ = server.step(tick + 1 / 80)
        assert server.env.joint_positions()[2] == pytest.approx(status.workspace_lower[2], abs=0.004)
        snapshots, corner2 = SnapshotRenderer(0.0, None), server.env.embodiment.camera("corner2")
        snapshots.capture(server.env, server.now(), [corner2])
        corner = snapshots.render([corner2])["corner2"]
        direct = server.env.render("corner2").astype(float)
        flipped = upright(direct.astype(np.uint8), True).astype(float)
        # the frames the demonstrations were made of: upright, and without shadows or reflections (a
        # shadowed frame scored 8.4 on image novelty, above the 5.0 hold threshold, through ROS)
        assert np.abs(corner - direct).mean() < 0.5 < np.abs(corner - flipped).mean()
        snapshots.close()
    finally:
        server.stop()
        server.env.close()
    with pytest.raises(ConfigError, match="expert_teleop"):
        SimServer(SimConfig(embodiment="sawyer", task="reach", expert_teleop=True))


def test_past_the_step_limit_the_hand_still_follows_and_success_is_final():
    """Meta-World refuses to step past its 500 steps. The sim node's hand held still there, so a policy
    that came up later than 6.25 s of sim time never moved it (the bringup test failed so under load)."""
    from gen0_policy.errors import ConfigError
    from gen0_policy.sim.metaworld_world import MetaWorldWorld

    world = MetaWorldWorld("reach", 0)
    try:
        mw = world._mw
        world.step(duration=mw.max_steps * world.control_dt)  # the whole episode, the hand held at home
        success = world.success()
        assert mw.steps == mw.max_steps and world.time == pytest.approx(6.25)
        with pytest.raises(ConfigError, match="episode is over"):
            mw.step(np.zeros(4))
        target = world.joint_positions() + np.array([0.06, 0.0, 0.04, 0.0])
        world.set_targets(target)
        world.step(duration=40 * world.control_dt)
        np.testing.assert_allclose(world.joint_positions()[:3], target[:3], atol=0.002)
        assert mw.steps == mw.max_steps and world.success() == success  # the verdict of the 500 steps
        assert world.time == pytest.approx(6.25 + 0.5)  # the clock goes on
        world.reset(1)
        assert mw.steps == 0 and not world.success()
    finally:
        world.close()


def test_processor_pads_and_masks_a_4d_robot_beside_a_joint_space_arm():
    from gen0_policy.model.config import ModelConfig
    from gen0_policy.model.processor import JointStats, Processor

    sawyer, panda = load_embodiment("sawyer"), load_embodiment("panda")
    stats = {
        e.name: JointStats(np.zeros(e.dof), np.ones(e.dof), np.zeros(e.dof), np.full(e.dof, 0.5))
        for e in (sawyer, panda)
    }
    proc = Processor(ModelConfig(), [panda, sawyer], stats)
    assert (proc.action_space("sawyer"), proc.action_space("panda")) == ("end_effector_delta", "joint_position")
    assert proc.dof_mask("sawyer").sum() == 4 and proc.dof_mask("panda").sum() == 8
    action = np.array([0.5, -1.0, 0.25, 1.0], np.float32)
    padded = proc.normalize_actions("sawyer", action)
    assert padded.shape == (32,) and np.all(padded[4:] == 0)
    np.testing.assert_allclose(proc.unnormalize_actions("sawyer", padded), action)


# -- the env adapter --------------------------------------------------------------------------------
def test_adapter_and_bench_modules_and_the_cli_import_no_metaworld():
    import subprocess
    import sys

    code = (
        "import sys, gen0_policy.sim.metaworld_env, gen0_policy.sim.metaworld_bench, gen0_policy.cli\n"
        "gen0_policy.cli.build_parser()\n"
        "assert not {'metaworld', 'mujoco'} & set(sys.modules), 'imported metaworld or mujoco'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_task_tables_match_metaworld():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS, ML45_V3, MT10_V3

    from gen0_policy.sim import metaworld_env as mw

    assert {f"{t}-v3" for t in mw.TASK_INSTRUCTIONS} == set(ALL_V3_ENVIRONMENTS)
    assert tuple(t.removesuffix("-v3") for t in MT10_V3) == mw.MT10
    assert {t.removesuffix("-v3") for t in ML45_V3["test"]} == set(mw.ML45_TEST)
    groups = [t for tasks in mw.DIFFICULTY.values() for t in tasks]
    assert sorted(groups) == sorted(mw.TASK_INSTRUCTIONS)  # each task in exactly one group
    assert [len(mw.DIFFICULTY[g]) for g in ("easy", "medium", "hard", "very_hard")] == [28, 11, 6, 5]
    assert mw.task_name("Pick_Place-v3") == "pick-place"
    with pytest.raises(Exception, match="unknown Meta-World task 'fly'; tasks are"):
        mw.task_name("fly")


def test_observations_in_the_project_format_and_seeded_layouts():
    from gen0_policy.sim.metaworld_env import MetaWorldEnv

    with MetaWorldEnv("reach", camera_size=(48, 32)) as env:
        obs = env.reset(3)
        assert obs["embodiment"] == "sawyer" and obs["instruction"] == "reach the goal position"
        assert obs["joint_positions"].shape == (4,) and load_embodiment("sawyer").within_limits(obs["joint_positions"])
        assert {k: (v.dtype, v.shape) for k, v in obs["images"].items()} == {
            "corner2": (np.uint8, (32, 48, 3)),
            "gripperPOV": (np.uint8, (32, 48, 3)),
        }
        goal = obs["env_state"][-3:].copy()
        np.testing.assert_array_equal(env.reset(3, images=False)["env_state"][-3:], goal)  # same seed, same goal
        assert not np.allclose(env.reset(4, images=False)["env_state"][-3:], goal)
        obs, success = env.step(np.array([1.0, 0, 0, 0]), images=False)
        assert obs["images"] == {} and not success and env.steps == 1


def test_the_first_frame_shows_this_episodes_layout():
    """Meta-World's reset moves fixtures and goal markers after its last forward pass; the frame at
    reset must show the new layout (the goal where success is checked, the window where it now is),
    not the previous episode's, which the policy's first chunk would otherwise be planned from."""
    import mujoco

    from gen0_policy.sim.metaworld_env import MetaWorldEnv

    with MetaWorldEnv("reach", cameras=[]) as env:
        env.reset(0, images=False)
        obs = env.reset(1, images=False)
        goal_site = env._env.data.site_xpos[mujoco.mj_name2id(env._env.model, mujoco.mjtObj.mjOBJ_SITE, "goal")]
        np.testing.assert_allclose(goal_site, obs["env_state"][-3:], atol=1e-9)
    with MetaWorldEnv("window-open", cameras=["corner2"], camera_size=(64, 64)) as env:
        env.reset(0, images=False)
        first = env.reset(1)["images"]["corner2"].astype(int)
        after, _ = env.step(np.zeros(4))  # the arm settles by a few pixels; nothing else moves
        changed = np.abs(first - after["images"]["corner2"].astype(int)).max(-1) > 30
        assert changed.sum() < 30, f"{changed.sum()} pixels changed: the first frame was a stale scene (82 were)"


def test_corner2_is_mounted_where_the_embodiment_says_and_the_workspace_fills_it():
    """The scene camera sits where config/embodiments/sawyer.yaml mounts it (the literature's corner2),
    not Meta-World's own 1.6 m away: across ten reach layouts the goals (the whole task) spread over
    1.6 times as many pixels each way in its 128-pixel frame (16 x 21 against 10 x 13)."""
    import mujoco

    from gen0_policy.sim.metaworld_env import MetaWorldEnv, mount_cameras

    def goal_pixels(env: MetaWorldEnv) -> np.ndarray:
        model, data = env._env.model, env._env.data
        cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
        f_px = 0.5 * 128 / np.tan(np.radians(model.cam_fovy[cam]) / 2)
        uv = []
        for seed in range(10):
            goal = env.reset(seed, images=False)["env_state"][-3:]
            x, y, z = data.cam_xmat[cam].reshape(3, 3).T @ (goal - data.cam_xpos[cam])  # camera frame
            uv.append([f_px * x / -z, f_px * y / -z])  # a pinhole looking down its -z
        return np.asarray(uv)

    mount = load_embodiment("sawyer").sim["cameras"]["corner2"]["pos"]
    with MetaWorldEnv("reach", cameras=[]) as env:
        np.testing.assert_allclose(env._env.model.cam_pos[2], mount)
        ours = np.ptp(goal_pixels(env), axis=0)
        env._env.model.cam_pos[2] = [1.3, -0.2, 1.1]  # Meta-World's own mount
        theirs = np.ptp(goal_pixels(env), axis=0)
        assert np.all(ours > 1.5 * theirs) and ours.min() > 14, (ours, theirs)
        with pytest.raises(ConfigError, match="no camera 'corner9'"):
            mount_cameras(env._env.model, {"corner9": {"pos": [0, 0, 1]}})
        with pytest.raises(ConfigError, match="3 finite numbers"):
            mount_cameras(env._env.model, {"corner2": {"pos": [0, float("nan"), 1]}})


def test_corner_cameras_come_out_upright():
    """Pixel check: MuJoCo's free camera always keeps the world's up at the top of the image. Put
    one at a corner camera's pose, looking the same way: it must see what our frame shows, and not
    what the raw (rolled) camera shows. "corner" is rolled exactly half a turn; corner2 a few
    degrees more, which stays (it is how that camera is mounted)."""
    import mujoco

    from gen0_policy.sim.metaworld_env import MetaWorldEnv

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    with MetaWorldEnv("reach", cameras=["corner", "corner2", "topview"], camera_size=(96, 96)) as env:
        assert env.upside_down == {"corner", "corner2"}  # found from the camera frames, not listed by hand
        env.reset(0, images=False)
        model, data = env._env.model, env._env.data
        for name, match in (("corner", 0.999), ("corner2", 0.8)):
            ours = env.render(name).astype(np.float64)
            cam = model.camera(name).id
            forward = -data.cam_xmat[cam].reshape(3, 3)[:, 2]
            free = mujoco.MjvCamera()
            free.type = mujoco.mjtCamera.mjCAMERA_FREE
            free.distance = 1.0
            free.lookat[:] = data.cam_xpos[cam] + forward
            free.azimuth = np.degrees(np.arctan2(forward[1], forward[0]))
            free.elevation = np.degrees(np.arcsin(forward[2]))
            model.vis.global_.fovy = model.cam_fovy[cam]
            with mujoco.Renderer(model, 96, 96) as renderer:
                renderer.update_scene(data, camera=free)
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
                reference = renderer.render().astype(np.float64)
            assert corr(ours, reference) > match, name
            assert corr(ours[::-1, ::-1], reference) < 0.2, name  # the raw frame is upside down


# -- data ---------------------------------------------------------------------------------------------
def test_collect_expert_episodes_read_back_with_the_project_reader(tmp_path):
    from gen0_policy.data.lerobot import LeRobotDataset
    from gen0_policy.sim.collect import MetaWorldCollectConfig, collect_metaworld

    config = MetaWorldCollectConfig(("reach", "drawer-close"), 1, camera_size=(32, 32))
    summary = collect_metaworld(config, tmp_path / "mw")
    assert summary["fps"] == 80 and summary["written"] == 2 and summary["failed"] == 0
    data = LeRobotDataset(tmp_path / "mw")
    assert data.num_episodes == 2 and data.camera_sizes == {"corner2": (32, 32), "gripperPOV": (32, 32)}
    episodes = data.episodes()
    assert [e.instruction for e in episodes] == ["reach the goal position", "push the drawer closed"]
    for e in episodes:
        assert e.embodiment == "sawyer" and e.states.shape[1] == e.actions.shape[1] == 4
        assert np.abs(e.actions).max() <= 1.0 and len(e) < 500
    # failed expert episodes (cut at 10 steps here) are dropped, or kept on request
    short = MetaWorldCollectConfig(("reach",), 2, camera_size=(32, 32), max_steps=10, keep_failed=True)
    kept = collect_metaworld(short, tmp_path / "kept")
    assert (kept["written"], kept["failed"]) == (2, 2)
    with pytest.raises(Exception, match="no episodes were added"):
        collect_metaworld(MetaWorldCollectConfig(("reach",), 1, camera_size=(32, 32), max_steps=10), tmp_path / "x")


def test_recoveries_move_the_hand_off_the_path_and_record_the_experts_own_actions():
    from gen0_policy.errors import ConfigError
    from gen0_policy.sim.collect import MetaWorldCollectConfig
    from gen0_policy.sim.metaworld_env import MetaWorldEnv, MetaWorldExpert, run_episode

    class Recording(MetaWorldExpert):
        def __init__(self) -> None:
            super().__init__()
            self.said: list[np.ndarray] = []

        def act(self, observation):
            self.said.append(super().act(observation))
            return self.said[-1]

    with MetaWorldEnv("reach", camera_size=(16, 16)) as env:
        clean = run_episode(env, MetaWorldExpert(), 5, record=True).episode
        expert = Recording()
        noisy = run_episode(env, expert, 5, record=True, action_noise=0.2).episode
        again = run_episode(env, MetaWorldExpert(), 5, record=True, action_noise=0.2).episode
    np.testing.assert_array_equal(noisy.actions, np.stack(expert.said))  # the expert's, not what was executed
    np.testing.assert_array_equal(noisy.states, again.states)  # seeded: the same demonstration again
    n = min(len(clean), len(noisy))
    off_path_m = np.linalg.norm(noisy.states[:n, :3] - clean.states[:n, :3], axis=1).max()
    assert 0.003 < off_path_m < 0.1
    assert noisy.metadata["action_noise"] == 0.2 and clean.metadata["action_noise"] == 0.0
    with pytest.raises(ConfigError, match="action noise"):
        MetaWorldCollectConfig(("reach",), 1, action_noise=2.0)


# -- evaluation ----------------------------------------------------------------------------------------
def test_bench_bookkeeping_per_task_per_group_and_resume(tmp_path):
    from gen0_policy.sim.metaworld_bench import BenchConfig, read_results, run_bench
    from gen0_policy.sim.metaworld_env import ADAPTER_VERSION

    results = tmp_path / "mt10.jsonl"
    first = run_bench(BenchConfig("mt10", episodes=2, tasks=("reach",)), results)
    assert not first["complete"] and first["tasks_done"] == 1 and len(first["tasks_missing"]) == 9
    assert first["per_task"]["reach"] == {"episodes": 2, "successes": 2, "success_rate": 1.0, "difficulty": "easy"}

    # a run killed mid-write: the torn line is ignored, the missing episode is run again
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + '\n{"kind": "episode", "task": "re')
    second = run_bench(BenchConfig("mt10", episodes=2, tasks=("reach", "push")), results)
    _, records = read_results(results)
    assert sorted((r["task"], r["episode"]) for r in records) == [("push", 0), ("push", 1), ("reach", 0), ("reach", 1)]
    assert [r["seed"] for r in records if r["task"] == "push"] == [0, 1]  # fixed seeds: SEED + i
    assert second["per_task"]["push"]["difficulty"] == "hard"
    assert second["difficulty"]["easy"] == {"tasks": 1, "of": 7, "success_rate": 1.0}
    assert second["difficulty"]["medium"]["success_rate"] is None
    assert second["average_success"] == 1.0

    before = results.read_text()
    run_bench(BenchConfig("mt10", episodes=2, tasks=("push",)), results)  # all done: nothing runs
    assert results.read_text() == before
    with pytest.raises(Exception, match="another protocol or policy"):
        run_bench(BenchConfig("mt10", episodes=2, seed=5), results)
    with pytest.raises(Exception, match="'execute': \\(None, 4\\)"):  # other rows per inference: not mixed in
        run_bench(BenchConfig("mt10", episodes=2, tasks=("push",), execute=4), results)
    header, *rest = results.read_text().splitlines(keepends=True)  # a file from before the first-frame fix
    results.write_text(header.replace(f', "adapter": {ADAPTER_VERSION}', "") + "".join(rest))
    with pytest.raises(Exception, match=f"'adapter': \\(1, {ADAPTER_VERSION}\\)"):
        run_bench(BenchConfig("mt10", episodes=2, tasks=("push",)), results)
    with pytest.raises(Exception, match="not in mt10"):
        BenchConfig("mt10", tasks=("hammer",))


@pytest.mark.slow  # ~30 s: collect, train a few steps, evaluate
def test_one_network_for_a_joint_space_arm_and_the_sawyer_runs_the_bench(tmp_path):
    """The pipeline end to end, tiny: Meta-World demonstrations beside a joint-space arm's train one
    network; its checkpoint carries the Sawyer's action space and drives gen0 bench metaworld."""
    import torch
    from model_fixtures import make_embodiment, make_episodes

    from gen0_policy.data.lerobot import load_episodes
    from gen0_policy.data.windows import MixtureSource
    from gen0_policy.model.policy import Gen0Policy
    from gen0_policy.sim.collect import MetaWorldCollectConfig, collect_metaworld
    from gen0_policy.sim.metaworld_bench import BenchConfig, run_bench
    from gen0_policy.train.config import TrainConfig
    from gen0_policy.train.loop import train

    torch.set_num_threads(1)
    collect_metaworld(MetaWorldCollectConfig(("reach",), 1, camera_size=(32, 32)), tmp_path / "mw")
    sources = [
        MixtureSource("sawyer", load_episodes(tmp_path / "mw")),
        MixtureSource("panda", make_episodes("panda", 2, fps=80.0)),
    ]
    config = TrainConfig(
        out_dir=str(tmp_path / "run"),
        preset="test",
        model={"language_encoder": "hash"},
        steps=4,
        batch_size=4,
        warmup_steps=1,
        val_every=4,
        save_every=4,
        log_every=4,
        precision="fp32",
        threads=1,
        progress=False,
    )
    train(config, sources, [load_embodiment("sawyer"), make_embodiment("panda")])
    policy = Gen0Policy.load(tmp_path / "run")
    assert policy.processor.action_space("sawyer") == "end_effector_delta"
    assert policy.processor.embodiment("sawyer").action == load_embodiment("sawyer").action
    summary = run_bench(
        BenchConfig("mt10", episodes=1, policy=str(tmp_path / "run"), tasks=("reach",), max_steps=12),
        tmp_path / "bench.jsonl",
    )
    assert summary["per_task"]["reach"]["episodes"] == 1 and summary["policy_id"] == policy.checkpoint_id


def test_goal_loss_keyframes_find_the_sawyers_grasp():
    """The keyframe (where a gripper command crosses half way) is read against the action's range:
    for the Sawyer an effort in [-1, 1], not the gripper opening's [0, 1]."""
    from gen0_policy.sim.metaworld_env import MetaWorldEnv, MetaWorldExpert, run_episode
    from gen0_policy.train.batch import next_keyframes

    sawyer = load_embodiment("sawyer")
    with MetaWorldEnv("pick-place", cameras=[]) as env:
        result = run_episode(env, MetaWorldExpert(), 0, record=True)
    assert result.success
    actions = result.episode.actions
    keys = next_keyframes(actions, sawyer.gripper_mask, sawyer.action_lower, sawyer.action_upper)
    grasp = int(keys[0])
    assert 0 < grasp < len(actions) - 1 and actions[grasp - 1, 3] <= 0 < actions[grasp, 3]


def test_the_shipped_metaworld_checkpoint_is_the_sawyers_default():
    """`gen0 bench metaworld` and `gen0 bringup sim --embodiment sawyer` default to the committed MT50
    checkpoint, which knows all 50 tasks, the Sawyer's joints and action space; the other robots keep theirs."""
    from gen0_policy.model.checkpoint import load_policy
    from gen0_policy.paths import shipped_checkpoint

    files = load_policy(shipped_checkpoint("sawyer"))
    assert [e.name for e in files.embodiments] == ["sawyer"]
    assert files.embodiments[0].joint_names == load_embodiment("sawyer").joint_names
    assert files.embodiments[0].action_space == "end_effector_delta"
    assert files.novelty is not None and files.meta["fps"] == 80.0
    assert shipped_checkpoint("panda") == shipped_checkpoint() != shipped_checkpoint("sawyer")
