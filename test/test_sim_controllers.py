"""joint_trajectory_controller / forward_command_controller semantics in numpy: numeric invariants
(endpoints hit exactly, continuity at replacement, velocity continuity of cubic splines, limits)
and rejection of every kind of bad command without any change of state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gen0_policy.commands import TrajectoryCommand
from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CommandError
from gen0_policy.sim.controllers import ControllerSet, ForwardPositionController, JointTrajectoryFollower

NAMES = ("j1", "j2", "j3")
LOWER = np.array([-2.0, -1.0, -3.0])
UPPER = np.array([2.0, 1.5, 3.0])


def follower(**options: bool) -> JointTrajectoryFollower:
    f = JointTrajectoryFollower("arm_controller", NAMES, LOWER, UPPER, **options)
    f.reset(np.array([0.1, -0.2, 0.3]), 0.0)
    return f


def cmd(times, positions, names=NAMES, velocities=None, accelerations=None, start=0.0) -> TrajectoryCommand:
    return TrajectoryCommand(
        joint_names=tuple(names),
        times=np.asarray(times, dtype=float),
        positions=np.asarray(positions, dtype=float),
        velocities=None if velocities is None else np.asarray(velocities, dtype=float),
        accelerations=None if accelerations is None else np.asarray(accelerations, dtype=float),
        start_time=start,
    )


def finite_difference(f: JointTrajectoryFollower, t: float, h: float = 1e-6) -> np.ndarray:
    return (f._trajectory.sample(t + h).positions - f._trajectory.sample(t - h).positions) / (2 * h)


def test_holds_reset_position_and_hits_points_exactly():
    f = follower()
    np.testing.assert_allclose(f.sample(5.0).positions, [0.1, -0.2, 0.3])
    points = np.array([[0.5, 0.5, 0.5], [1.0, -0.5, 2.0], [-1.0, 1.0, -2.5]])
    f.command(cmd([0.5, 1.0, 2.0], points), now=1.0)
    np.testing.assert_allclose(f.sample(1.0).positions, [0.1, -0.2, 0.3])  # starts where it was
    for t, p in zip([1.5, 2.0, 3.0], points, strict=True):
        np.testing.assert_allclose(f.sample(t).positions, p, atol=1e-12)
    np.testing.assert_allclose(f.sample(10.0).positions, points[-1])  # holds the last point
    np.testing.assert_allclose(f.sample(10.0).velocities, 0.0)
    assert f.end_time == pytest.approx(3.0)


def test_linear_interpolation_between_points():
    f = follower()
    f.command(cmd([1.0, 2.0], [[1.1, 0.8, 1.3], [1.1, 0.8, 2.3]]), now=0.0)
    np.testing.assert_allclose(f.sample(0.25).positions, [0.35, 0.05, 0.55])
    np.testing.assert_allclose(f.sample(0.25).velocities, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(f.sample(1.5).positions, [1.1, 0.8, 1.8])


def test_joint_names_in_any_order_are_reordered():
    f = follower()
    f.command(cmd([1.0], [[0.3, 1.0, -1.0]], names=("j3", "j1", "j2")), now=0.0)
    np.testing.assert_allclose(f.sample(1.0).positions, [1.0, -1.0, 0.3])


def test_cubic_is_velocity_continuous_and_matches_given_velocities():
    f = follower()
    positions = [[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [1.2, 0.6, -1.0]]
    velocities = [[0.8, 0.4, -1.0], [0.3, 0.1, -1.5], [0.0, 0.0, 0.0]]
    f.command(cmd([0.5, 1.2, 2.0], positions, velocities=velocities), now=0.0)
    for t, p, v in zip([0.5, 1.2, 2.0], positions, velocities, strict=True):
        np.testing.assert_allclose(f.sample(t).positions, p, atol=1e-12)
        np.testing.assert_allclose(f.sample(t - 1e-9).velocities, v, atol=1e-6)  # left limit
        if t < 2.0:
            np.testing.assert_allclose(f.sample(t + 1e-9).velocities, v, atol=1e-6)  # right limit
    # velocities are the derivative of the positions (finite differences) inside segments
    for t in np.linspace(0.05, 1.95, 11):
        np.testing.assert_allclose(finite_difference(f, t), f._trajectory.sample(t).velocities, atol=1e-5)


def test_quintic_matches_accelerations_and_is_acceleration_continuous():
    f = follower()
    positions = [[0.5, 0.2, 1.0], [1.0, 0.5, 0.5]]
    velocities = [[0.5, 0.2, -0.5], [0.0, 0.0, 0.0]]
    accelerations = [[0.1, -0.3, 0.2], [0.0, 0.0, 0.0]]
    f.command(cmd([1.0, 2.0], positions, velocities=velocities, accelerations=accelerations), now=0.0)
    left, right = f.sample(1.0 - 1e-9), f.sample(1.0 + 1e-9)
    np.testing.assert_allclose(left.accelerations, accelerations[0], atol=1e-6)
    np.testing.assert_allclose(right.accelerations, accelerations[0], atol=1e-6)
    np.testing.assert_allclose(f.sample(2.0).positions, positions[1], atol=1e-12)


def test_replacement_is_continuous_and_replaces_the_rest():
    f = follower()
    f.command(cmd([2.0], [[1.5, 1.0, 2.0]], velocities=[[0.0, 0.0, 0.0]]), now=0.0)
    before = f._trajectory.sample(0.8)
    f.command(cmd([1.0], [[-1.0, -0.5, -2.0]], velocities=[[0.0, 0.0, 0.0]]), now=0.8)
    after = f._trajectory.sample(0.8)
    np.testing.assert_allclose(after.positions, before.positions, atol=1e-12)  # position continuous
    np.testing.assert_allclose(after.velocities, before.velocities, atol=1e-12)  # velocity continuous (cubic)
    np.testing.assert_allclose(f.sample(1.8).positions, [-1.0, -0.5, -2.0], atol=1e-12)  # new goal reached
    np.testing.assert_allclose(f.sample(5.0).positions, [-1.0, -0.5, -2.0])  # old goal forgotten


def test_future_start_time_keeps_old_trajectory_until_then():
    f = follower()
    f.command(cmd([1.0, 2.0], [[1.0, 1.0, 1.0], [1.5, 1.2, 2.0]]), now=0.0)
    reference = follower()
    reference.command(cmd([1.0, 2.0], [[1.0, 1.0, 1.0], [1.5, 1.2, 2.0]]), now=0.0)
    f.command(cmd([0.5], [[0.0, 0.0, 0.0]], start=1.5), now=0.2)
    for t in np.linspace(0.2, 1.5, 14):  # unchanged up to the new start
        np.testing.assert_allclose(f.sample(t).positions, reference.sample(t).positions, atol=1e-12)
    np.testing.assert_allclose(f.sample(2.0).positions, [0.0, 0.0, 0.0], atol=1e-12)
    assert not np.allclose(f.sample(1.75).positions, reference.sample(1.75).positions)


def test_start_time_in_the_past_interpolates_from_now_without_a_jump():
    f = follower()
    f.command(cmd([1.0, 2.0, 3.0], [[0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [1.5, 1.5, 1.5]], start=9.0), now=10.5)
    np.testing.assert_allclose(f.sample(10.5).positions, [0.1, -0.2, 0.3], atol=1e-12)  # no jump
    np.testing.assert_allclose(f.sample(11.0).positions, [1.0, 1.0, 1.0], atol=1e-12)  # on schedule after
    np.testing.assert_allclose(f.sample(12.0).positions, [1.5, 1.5, 1.5], atol=1e-12)


def test_point_at_time_zero_jumps_there_like_jtc():
    f = follower()
    f.command(cmd([0.0, 1.0], [[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]]), now=3.0)
    np.testing.assert_allclose(f.sample(3.0).positions, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(f.sample(3.5).positions, [1.5, 1.0, 1.0])


def test_partial_goal_holds_the_other_joints_when_allowed():
    f = follower(allow_partial_joints_goal=True)
    f.command(cmd([1.0], [[1.0]], names=("j2",)), now=0.0)
    np.testing.assert_allclose(f.sample(1.0).positions, [0.1, 1.0, 0.3])
    with pytest.raises(CommandError, match=r"lacks joints \['j1', 'j3'\].*allow_partial_joints_goal"):
        follower().command(cmd([1.0], [[1.0]], names=("j2",)), now=0.0)


def test_sampled_positions_stay_within_limits_even_when_a_spline_overshoots():
    f = follower()
    # a fast velocity at an interior point near the upper limit makes the cubic overshoot it
    f.command(cmd([0.5, 1.0], [[1.9, 1.4, 2.9], [2.0, 1.5, 3.0]], velocities=[[5, 5, 5], [0, 0, 0]]), now=0.0)
    raw = np.array([f._trajectory.sample(t).positions for t in np.linspace(0, 1, 201)])
    assert np.any(raw > UPPER)  # the raw spline does overshoot ...
    sampled = np.array([f.sample(t).positions for t in np.linspace(0, 1, 201)])
    assert np.all(sampled <= UPPER) and np.all(sampled >= LOWER)  # ... the commanded targets never do


BAD_COMMANDS = [
    (cmd([1.0], [[0.0, 0.0, 0.0]], names=("j1", "j2", "elbow")), r"incoming joints \['elbow'\] are not among"),
    (cmd([1.0], [[0.0, 0.0, 0.0]], names=("j1", "j1", "j2")), r"joint names \['j1'\] appear more than once"),
    (cmd([1.0], [[0.0, 2.0, 0.0]]), r"position 2 for joint j2 at point #0 is outside its limits \[-1, 1.5\]"),
    (cmd([1.0, 2.0], [[0.0, 0.0, 0.0], [0.0, np.nan, 0.0]]), r"positions at point #1 for joint j2 is nan"),
    (cmd([1.0], [[0.0, 0.0, np.inf]]), r"joint j3 is inf"),
    (cmd([1.0, 1.0], [[0.0, 0.0, 0.0], [0.1, 0.1, 0.1]]), r"between points #0 and #1 is not strictly increasing"),
    (cmd([2.0, 1.0], [[0.0, 0.0, 0.0], [0.1, 0.1, 0.1]]), r"not strictly increasing"),
    (cmd([-1.0], [[0.0, 0.0, 0.0]]), r"point #0 is negative"),
    (cmd([], np.zeros((0, 3))), r"empty trajectory"),
    (cmd([1.0], [[0.0, 0.0, 0.0]], velocities=[[0.1, 0.0, 0.0]]), r"last point has nonzero velocities"),
    (cmd([1.0], [[0.0, 0.0, 0.0]], start=2.0), r"ends in the past"),
    (cmd([1.0], np.zeros((1, 0)), names=()), r"empty joint_names"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_COMMANDS)
def test_bad_trajectories_are_rejected_and_never_executed(bad, message):
    f = follower()
    f.command(cmd([1.0], [[1.0, 1.0, 1.0]]), now=0.0)
    expected = [f.sample(t).positions for t in (5.0, 5.5, 7.0)]
    with pytest.raises(CommandError, match=message):
        f.command(bad, now=5.0)
    for t, e in zip((5.0, 5.5, 7.0), expected, strict=True):
        np.testing.assert_array_equal(f.sample(t).positions, e)


def test_nonzero_end_velocity_allowed_when_configured():
    f = follower(allow_nonzero_velocity_at_trajectory_end=True)
    f.command(cmd([1.0], [[0.5, 0.5, 0.5]], velocities=[[0.1, 0.0, 0.0]]), now=0.0)
    np.testing.assert_allclose(f.sample(1.0).positions, [0.5, 0.5, 0.5])


def test_ragged_points_are_rejected_with_the_point_index():
    with pytest.raises(CommandError, match=r"joint_names size \(3\) and positions size \(2\) at point #1"):
        TrajectoryCommand.from_points(NAMES, [1.0, 2.0], [[0, 0, 0], [0, 0]])
    with pytest.raises(CommandError, match=r"velocities size \(0\) at point #0"):
        TrajectoryCommand.from_points(NAMES, [1.0, 2.0], [[0, 0, 0], [0, 0, 0]], velocities=[[], [0, 0, 0]])
    ok = TrajectoryCommand.from_points(NAMES, [1.0, 2.0], [[0, 0, 0], [1, 1, 1]], velocities=[[], []])
    assert ok.velocities is None and ok.positions.shape == (2, 3)


def test_forward_position_controller():
    c = ForwardPositionController("gripper_controller", ("g",), [0.0], [0.04])
    c.command([0.03])
    np.testing.assert_allclose(c.sample().positions, [0.03])
    for bad, message in [
        ([0.01, 0.02], r"2 values but the controller has 1 joints \['g'\]"),
        ([], r"0 values"),
        ([float("nan")], r"joint g is nan"),
        ([0.05], r"0.05 for joint g is outside its limits \[0, 0.04\]"),
    ]:
        with pytest.raises(CommandError, match=message):
            c.command(bad)
        np.testing.assert_allclose(c.sample().positions, [0.03])


def embodiment() -> Embodiment:
    joints = [
        {"name": "a1", "lower": -1, "upper": 1, "velocity": 1, "effort": 10, "home": 0.0},
        {"name": "a2", "lower": -1, "upper": 1, "velocity": 1, "effort": 10, "home": 0.5},
        {"name": "g", "lower": 0, "upper": 0.04, "velocity": 0.1, "effort": 10, "home": 0.0, "gripper": True},
    ]
    return Embodiment.from_dict(
        {
            "name": "toy",
            "joints": joints,
            "controllers": [
                {"name": "arm_controller", "type": "joint_trajectory_controller", "joints": ["a1", "a2"]},
                {"name": "gripper_controller", "type": "forward_position_controller", "joints": ["g"]},
                {"name": "arm_forward", "type": "forward_position_controller", "joints": ["a1", "a2"]},
            ],
        }
    )


def test_controller_set_merges_targets_in_embodiment_order():
    cs = ControllerSet(embodiment())
    np.testing.assert_allclose(cs.targets(0.0), [0.0, 0.5, 0.0])  # home
    cs.command_trajectory("arm_controller", cmd([1.0], [[0.5, 0.2]], names=("a2", "a1")), now=0.0)
    cs.command_positions("gripper_controller", [0.04], now=0.0)
    np.testing.assert_allclose(cs.targets(1.0), [0.2, 0.5, 0.04])
    with pytest.raises(CommandError, match="forward position controller; send it a Float64MultiArray"):
        cs.command_trajectory("gripper_controller", cmd([1.0], [[0.0]], names=("g",)), now=1.0)
    with pytest.raises(CommandError, match=r"no controller 'nope'; available controllers are"):
        cs.command_positions("nope", [0.0], now=1.0)


def test_switching_controllers_on_shared_joints_never_jumps():
    cs = ControllerSet(embodiment())
    cs.command_trajectory("arm_controller", cmd([2.0], [[1.0, -1.0]], names=("a1", "a2")), now=0.0)
    mid = cs.targets(1.0)
    with pytest.raises(CommandError):  # rejected: the trajectory keeps its joints
        cs.command_positions("arm_forward", [2.0, 0.0], now=1.0)
    np.testing.assert_allclose(cs.targets(1.0), mid)
    cs.command_positions("arm_forward", [0.3, 0.3], now=1.0)
    np.testing.assert_allclose(cs.targets(1.5), [0.3, 0.3, 0.0])
    # the trajectory controller takes the joints back, starting from where they are now
    cs.command_trajectory("arm_controller", cmd([1.0], [[0.0, 0.0]], names=("a1", "a2")), now=2.0)
    np.testing.assert_allclose(cs.targets(2.0), [0.3, 0.3, 0.0], atol=1e-12)
    np.testing.assert_allclose(cs.targets(3.0), [0.0, 0.0, 0.0], atol=1e-12)


def test_reset_holds_given_positions():
    cs = ControllerSet(embodiment())
    cs.command_trajectory("arm_controller", cmd([1.0], [[1.0, 1.0]], names=("a1", "a2")), now=0.0)
    cs.reset(np.array([0.1, 0.2, 0.01]), time=0.5)
    np.testing.assert_allclose(cs.targets(3.0), [0.1, 0.2, 0.01])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(["linear", "cubic", "quintic"]),
    n_points=st.integers(1, 5),
    replace_at=st.floats(0.0, 3.0),
)
def test_random_trajectories_keep_invariants(seed, kind, n_points, replace_at):
    """Random valid goals, replaced at a random instant: points are hit, positions stay continuous
    at the replacement (velocities too for cubic/quintic), targets never leave the limits."""
    rng = np.random.default_rng(seed)

    def random_cmd() -> TrajectoryCommand:
        times = np.cumsum(rng.uniform(0.05, 1.0, n_points))
        positions = rng.uniform(LOWER, UPPER, (n_points, 3))
        velocities = accelerations = None
        if kind != "linear":
            velocities = rng.uniform(-1, 1, (n_points, 3))
            velocities[-1] = 0.0
        if kind == "quintic":
            accelerations = rng.uniform(-1, 1, (n_points, 3))
        return cmd(times, positions, velocities=velocities, accelerations=accelerations)

    f = follower()
    first = random_cmd()
    f.command(first, now=0.0)
    for t, p in zip(first.times, first.positions, strict=True):
        np.testing.assert_allclose(f.sample(float(t)).positions, p, atol=1e-9)
    before = f._trajectory.sample(replace_at)
    second = random_cmd()
    f.command(second, now=replace_at)
    after = f._trajectory.sample(replace_at)
    np.testing.assert_allclose(after.positions, before.positions, atol=1e-9)
    if kind != "linear":
        np.testing.assert_allclose(after.velocities, before.velocities, atol=1e-9)
    np.testing.assert_allclose(f.sample(replace_at + second.times[-1]).positions, second.positions[-1], atol=1e-9)
    for t in np.linspace(0.0, replace_at + second.times[-1] + 1.0, 50):
        p = f.sample(t).positions
        assert np.all(p >= LOWER) and np.all(p <= UPPER) and np.all(np.isfinite(p))


# ------------------------------------------------ trajectory replacement (ros2_controllers PR #2419)
def two_point_goal(**options: bool) -> JointTrajectoryFollower:
    """Executing: j3 from 0.3 at rest to 1.3 at 1 s (1 rad/s), then to 2.3 at rest at 2 s:
    p = 0.3 + 2t^2 - t^3 on [0, 1], p = 1.3 + s + s^2 - s^3 (s = t - 1) on [1, 2]."""
    f = follower(**options)
    f.command(cmd([1.0, 2.0], [[0.1, -0.2, 1.3], [0.1, -0.2, 2.3]], velocities=[[0, 0, 1], [0, 0, 0]]), now=0.0)
    return f


def test_a_future_goal_is_spliced_in_at_its_start_from_the_executing_state():
    f = two_point_goal()
    assert f.sample(0.5).positions[2] == pytest.approx(0.675)
    f.command(cmd([0.5], [[0.1, -0.2, 1.3]], velocities=[[0, 0, 0]], start=1.5), now=0.5)
    assert f.sample(1.25).positions[2] == pytest.approx(1.596875)  # the old trajectory until 1.5 s
    # bridge (1.5 s, 1.925, 1.25 rad/s) -> (2.0 s, 1.3, 0): c2 = -12.5, c3 = 15
    assert f.sample(1.75).positions[2] == pytest.approx(1.690625)
    assert f.sample(1.75).velocities[2] == pytest.approx(-2.1875)
    assert f.sample(2.5).positions[2] == pytest.approx(1.3)


def test_without_replacement_or_on_a_hold_a_future_goal_replaces_at_once():
    f = two_point_goal(allow_trajectory_replacement=False)
    f.command(cmd([0.5], [[0.1, -0.2, 1.3]], velocities=[[0, 0, 0]], start=1.5), now=0.5)
    # from the desired state now (0.675, 1.25 rad/s) straight to (2.0 s, 1.3, 0): c2 = -5/6, c3 = 5/27
    assert f.sample(1.25).positions[2] == pytest.approx(1.221875)
    held = follower()  # holding (one point): the goal starts moving now, not at its stamp
    held.command(cmd([1.0], [[1.0, -0.2, 0.3]], start=1.0), now=0.0)
    assert held.sample(1.0).positions[0] == pytest.approx(0.55)  # linear 0.1 -> 1.0 over [0, 2] s


def test_a_point_at_a_future_start_is_reached_from_the_last_old_point_not_jumped_to():
    f = follower()
    f.command(cmd([1.0, 2.0], [[1.0, 1.0, 1.0], [2.0, 1.5, 2.0]]), now=0.0)
    f.command(cmd([0.0, 0.5], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], start=1.5), now=0.5)
    assert f.sample(0.75).positions[0] == pytest.approx(0.775)  # old: 0.1 -> 1.0 over [0, 1]
    assert f.sample(1.25).positions[0] == pytest.approx(0.5)  # re-interpolated 1.0 (1 s) -> 0.0 (1.5 s)
    assert f.sample(1.5).positions[0] == pytest.approx(0.0)


def test_a_nonzero_end_velocity_is_held_after_the_end_and_starts_the_next_splice():
    f = follower(allow_nonzero_velocity_at_trajectory_end=True)
    f.command(cmd([1.0, 2.0], [[0.6, -0.2, 0.3], [1.1, -0.2, 0.3]], velocities=[[0.5, 0, 0], [0.5, 0, 0]]), now=0.0)
    end = f.sample(3.0)
    assert end.positions[0] == pytest.approx(1.1) and end.velocities[0] == pytest.approx(0.5)
    f.command(cmd([0.5], [[1.1, -0.2, 0.3]], velocities=[[0, 0, 0]], start=3.5), now=3.0)
    # bridge (3.5 s, 1.1, 0.5 rad/s) -> (4.0 s, 1.1, 0): c2 = -2, c3 = 2
    assert f.sample(3.75).positions[0] == pytest.approx(1.13125)
    tiny = [[1e-9, 0, 0]]  # the controller's zero is float epsilon
    follower().validate(cmd([1.0], [[1.0, 0.0, 0.0]], velocities=tiny), now=0.0)
    with pytest.raises(CommandError, match="nonzero velocities"):
        follower().validate(cmd([1.0], [[1.0, 0.0, 0.0]], velocities=[[1e-3, 0, 0]]), now=0.0)


def test_a_command_horizon_carries_the_robot_through_300_ms_of_silence_where_one_point_stops_it():
    from gen0_policy.runtime import Command
    from gen0_policy.runtime.horizon import HorizonPlanner
    from gen0_policy.runtime.safety import SafetyFilter, SafetyLimits
    from gen0_policy.runtime.trajectory import Chunk, Trajectory

    limits = SafetyLimits(LOWER, UPPER, np.full(3, 1.0), np.full(3, 5.0))
    t = 0.05 * np.arange(16)
    plan = Trajectory.from_chunk(
        Chunk(np.stack([0.1 + 0.4 * t, -0.2 - 0.3 * t, 0.3 + 0.2 * np.sin(t)], axis=1), 0.0, 0.05),
        0.0,
        np.array([0.1, -0.2, 0.3]),
        np.array([0.4, -0.3, 0.2]),
    )
    planner = HorizonPlanner(SafetyFilter(limits), 0.01, horizon=0.5, refresh=0.05)
    horizon, streamed = follower(), follower()
    for f in (horizon, streamed):
        f.reset(plan.position(0.0), 0.0)
    silent = (0.2, 0.5)  # the policy process is frozen: nothing is sent
    samples = []
    for k in range(80):
        now = 0.01 * k
        if not silent[0] <= now < silent[1]:
            command = Command(now, plan.position(now), plan.velocity(now), False, 1, now, False)
            h = planner.update(command, plan)
            if h is not None:  # what the policy node sends a controller of these joints
                h = h.select(np.arange(3))
                horizon.command(cmd(h.times, h.positions, velocities=h.velocities, start=h.start), now=now)
            streamed.command(cmd([0.01], [plan.position(now)]), now=now)
        for sub in range(10):  # the controller runs at 1 kHz
            tc = now + sub * 0.001
            samples.append((tc, horizon.sample(tc), streamed.sample(tc)))
    times = np.array([s[0] for s in samples])
    p_h = np.array([s[1].positions for s in samples])
    v_h = np.array([s[1].velocities for s in samples])
    p_s = np.array([s[2].positions for s in samples])
    quiet = (times > silent[0] + 0.05) & (times < silent[1])
    assert np.max(np.abs(p_h[quiet] - plan.position(times[quiet]))) < 1e-3  # still on the plan
    assert np.all(np.abs(v_h[quiet, 0]) > 0.3)  # and moving
    assert np.ptp(p_s[quiet], axis=0).max() < 1e-12  # the one-point stream stood still
    moving = times[1:] > 0.1  # after the first horizon took over from rest (its first point is 70 ms ahead)
    assert np.max(np.abs(np.diff(p_h, axis=0))[moving]) <= 1.0 * 0.001 * (1 + 1e-6)  # never faster than allowed
    assert np.max(np.abs(np.diff(v_h, axis=0))[moving]) <= 5.0 * 0.001 * (1 + 1e-6)  # no velocity jump at joins
