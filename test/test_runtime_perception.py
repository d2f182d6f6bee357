"""Latest-wins sensor buffers: ages, ordering, and bad input rejected with a reason, losing nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from runtime_helpers import image

from gen0_policy.errors import ObservationError
from gen0_policy.runtime.clock import ClockJump, JumpDetector, ManualClock
from gen0_policy.runtime.perception import JOINTS, PerceptionStream


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(10.0)


@pytest.fixture
def stream(clock: ManualClock) -> PerceptionStream:
    return PerceptionStream(dof=3, cameras={"front": (6, 8), "wrist": None}, clock=clock)


def test_complete_observation_only_when_every_source_has_spoken(stream, clock) -> None:
    stream.put_joints(np.zeros(3), stamp=9.9)
    stream.put_image("front", image(1), stamp=9.8)
    assert stream.latest() is None and stream.missing() == ["wrist"]
    stream.put_image("wrist", image(2, 4, 4), stamp=9.95)
    observation = stream.latest()
    assert observation.stamp == 9.8 and observation.stalest() == "front"
    assert observation.age(clock.now()) == pytest.approx(0.2)
    policy_input = observation.to_policy_input("toy", "pick")
    assert policy_input["joint_positions"].dtype == np.float32 and set(policy_input["images"]) == {"front", "wrist"}


def test_a_task_begins_with_measurements_taken_after_it(stream) -> None:
    """Through ROS here, frames arrive 70-280 ms after they are taken, so after a sim reset and a new
    goal the first frame to arrive showed the scene before the reset (pick_place, seed 116: the first
    chunk went for the old cube). Cleared with ``not_before``, what was stamped earlier is dropped."""
    stream.clear(not_before=10.0)
    stream.put_joints(np.zeros(3), stamp=9.99)
    stream.put_image("front", image(1), stamp=9.97)
    stream.put_image("wrist", image(2, 4, 4), stamp=9.98)
    assert set(stream.missing()) == {JOINTS, "front", "wrist"}
    assert stream.latest() is None and stream.before_start == 3
    stream.put_joints(np.ones(3), stamp=10.0)
    stream.put_image("front", image(3), stamp=10.01)
    stream.put_image("wrist", image(4, 4, 4), stamp=10.02)
    observation = stream.latest()
    assert observation.stamp == 10.0 and observation.images["front"][0, 0, 0] == 3
    stream.clear()  # a clock jump: the new timeline's stamps are all valid
    stream.put_joints(np.zeros(3), stamp=1.0)
    assert stream.latest_joints() is not None


def test_latest_wins_by_stamp_not_arrival(stream) -> None:
    stream.put_joints(np.ones(3), stamp=9.5)
    stream.put_joints(np.full(3, 2.0), stamp=9.4)  # delivered late: older than what we have
    np.testing.assert_array_equal(stream.latest_joints(), np.ones(3))
    stream.put_joints(np.full(3, 3.0), stamp=9.6)
    np.testing.assert_array_equal(stream.latest_joints(), np.full(3, 3.0))


@pytest.mark.parametrize(
    ("put", "match"),
    [
        (lambda s: s.put_joints(np.array([0.0, np.nan, 0.0])), "NaN/inf at indices \\[1\\]"),
        (lambda s: s.put_joints(np.zeros(2)), "expected \\(3,\\); missing joints"),
        (lambda s: s.put_image("front", image(0, 5, 8)), "image is 8x5, expected 8x6"),
        (lambda s: s.put_image("front", np.zeros((6, 8, 3), np.float32)), "uint8 RGB"),
        (lambda s: s.put_image("front", np.zeros((6, 8), np.uint8)), "uint8 RGB"),
        (lambda s: s.put_image("side", image()), "unknown camera 'side'"),
        (lambda s: s.put_joints(np.zeros(3), stamp=20.0), "ahead of the runtime clock.*use_sim_time"),
    ],
)
def test_bad_input_is_rejected_with_a_reason_and_keeps_the_last_good_value(stream, put, match) -> None:
    stream.put_joints(np.ones(3))
    stream.put_image("front", image(7))
    with pytest.raises(ObservationError, match=match):
        put(stream)
    assert stream.rejected == 1 and stream.last_error
    np.testing.assert_array_equal(stream.latest_joints(), np.ones(3))
    assert stream._slots["front"].value[0, 0, 0] == 7


def test_wait_newer_wakes_on_the_next_complete_observation(clock) -> None:
    stream = PerceptionStream(dof=1, cameras={}, clock=clock)
    assert stream.wait_newer(-1, timeout=0.01) is None
    timer = threading.Timer(0.05, lambda: stream.put_joints(np.ones(1)))
    timer.start()
    observation = stream.wait_newer(-1, timeout=5.0)
    assert observation is not None and observation.joint_positions[0] == 1.0
    stream.clear()
    assert stream.latest() is None and stream.wait_newer(observation.seq, timeout=0.01) is None


def test_wait_fresh_passes_over_a_stale_observation_once(clock) -> None:
    stream = PerceptionStream(dof=1, cameras={}, clock=clock)
    assert stream.wait_fresh(-1, max_age=0.5, timeout=0.01) == (None, -1)
    stream.put_joints(np.ones(1), stamp=9.0)  # 1 s old
    observation, seq = stream.wait_fresh(-1, max_age=0.5, timeout=0.01)
    assert observation is None and seq >= 0  # stale: not acted on, and not waited for again
    assert stream.wait_fresh(seq, max_age=0.5, timeout=0.01) == (None, seq)
    stream.put_joints(np.ones(1), stamp=9.9)
    observation, newer = stream.wait_fresh(seq, max_age=0.5, timeout=0.01)
    assert observation is not None and newer == observation.seq > seq


def test_jump_detector_sees_backwards_and_large_forward_jumps() -> None:
    detector = JumpDetector(forward_limit=1.0)
    assert detector.check(5.0) is None and detector.check(5.01) is None
    jump = detector.check(2.0)
    assert isinstance(jump, ClockJump) and jump.delta == pytest.approx(-3.01)
    assert "backwards by 3.010 s" in jump.describe()
    assert detector.check(2.5) is None
    assert "forwards" in detector.check(10.0).describe()


def test_rejections_are_remembered_per_source_until_good_data_arrives(stream) -> None:
    with pytest.raises(ObservationError):
        stream.put_joints(np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ObservationError):
        stream.put_image("front", image(0, 5, 8))
    assert "NaN" in stream.why(["joint_states"]) and "8x5" in stream.why(["front"])
    assert stream.why(["wrist"]) == ""
    stream.put_joints(np.zeros(3))
    assert stream.why(["joint_states"]) == "" and "8x5" in stream.why(["joint_states", "front"])


def test_joint_states_faster_than_any_joint_can_move_count_as_a_jump(clock) -> None:
    stream = PerceptionStream(dof=2, clock=clock, joint_speed_limits=np.array([1.0, np.inf]))
    stream.put_joints(np.zeros(2), stamp=9.0)
    stream.put_joints(np.array([0.015, 5.0]), stamp=9.0)  # within the slack; the second joint is exempt
    stream.put_joints(np.array([0.2, 5.0]), stamp=9.1)  # 0.185 in 0.1 s at 1 rad/s: possible
    assert stream.joint_jumps == 0
    stream.put_joints(np.array([1.5, 9.0]), stamp=9.2)  # 1.3 in 0.1 s: a teleport
    assert stream.joint_jumps == 1 and "joint 0 jumped 1.300 in 0.100 s" in stream.joint_jump_reason
    stream.put_joints(np.array([0.0, 1.0]), stamp=9.2)
    assert stream.joint_jumps == 2 and "joint 0 jumped 1.500 in 0.000 s" in stream.joint_jump_reason


def test_synchronized_observation_pairs_images_with_the_joint_state_of_their_time(clock) -> None:
    """Cameras lag joint states; the policy was trained on simultaneous ones. The observation takes the
    joint state measured when its oldest image was (interpolated), and is stamped then."""
    stream = PerceptionStream(dof=2, cameras={"front": None, "wrist": None}, clock=clock, synchronize_joints=True)
    for k in range(11):  # a joint moving at 1 rad/s, measured at 100 Hz from t = 9.0
        stream.put_joints(np.array([9.0 + 0.01 * k, 5.0]), stamp=9.0 + 0.01 * k)
    stream.put_image("front", image(1), stamp=9.045)  # the older image
    stream.put_image("wrist", image(2), stamp=9.08)
    observation = stream.wait_newer(-1, 0.0)  # the observation to act on
    np.testing.assert_allclose(observation.joint_positions, [9.045, 5.0])
    assert stream.latest().stamps["joint_states"] == pytest.approx(9.1)  # supervision sees the raw stamps
    assert observation.stamps["joint_states"] == pytest.approx(9.045) and observation.stamp == pytest.approx(9.045)
    stream.put_image("front", image(1), stamp=8.0)  # out of order: ignored, nothing changes
    np.testing.assert_allclose(stream.wait_newer(-1, 0.0).joint_positions, [9.045, 5.0])
    stream.put_image("front", image(1), stamp=9.2)  # newer than every joint state: the newest one
    stream.put_image("wrist", image(2), stamp=9.2)
    np.testing.assert_allclose(stream.wait_newer(-1, 0.0).joint_positions, [9.1, 5.0])
    assert stream.wait_newer(-1, 0.0).stamps["joint_states"] == pytest.approx(9.1)

    plain = PerceptionStream(dof=2, cameras={"front": None}, clock=clock)  # off: the newest joint state
    plain.put_joints(np.zeros(2), stamp=9.0)
    plain.put_joints(np.ones(2), stamp=9.1)
    plain.put_image("front", image(1), stamp=9.0)
    np.testing.assert_allclose(plain.wait_newer(-1, 0.0).joint_positions, [1.0, 1.0])


def test_an_out_of_order_joint_state_is_dropped_before_the_jump_check(clock) -> None:
    """A stale message far from the newest one used to count as a teleport (and re-anchor the robot)
    before it was discarded as out of order: order is checked first now."""
    stream = PerceptionStream(dof=2, clock=clock, joint_speed_limits=np.array([1.0, 1.0]))
    stream.put_joints(np.zeros(2), stamp=9.9)
    stream.put_joints(np.array([0.01, 0.0]), stamp=9.95)
    stream.put_joints(np.array([0.54, 0.0]), stamp=9.5)  # late and far: dropped, not a jump
    assert stream.joint_jumps == 0 and stream.out_of_order == 1
    np.testing.assert_allclose(stream.latest_joints(), [0.01, 0.0])


def test_a_joint_state_far_outside_the_limits_is_refused(clock) -> None:
    """The fuzz benchmark found 1e300 accepted as a measurement (and re-anchored to, clipped)."""
    stream = PerceptionStream(dof=2, clock=clock, joint_bounds=(np.array([-1.0, 0.0]), np.array([1.0, 0.04])))
    stream.put_joints(np.array([1.2, 0.045]), stamp=9.0)  # a little outside: a real robot does that
    with pytest.raises(ObservationError, match="joint 0 at 1e\\+300, far outside its limits"):
        stream.put_joints(np.array([1e300, 0.0]), stamp=9.1)
    np.testing.assert_allclose(stream.latest_joints(), [1.2, 0.045])
