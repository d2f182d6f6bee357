"""Meta-World through the project's pipeline (issue 15): the Sawyer's end-effector action space, the
env adapter (observations, upright cameras), expert collection into LeRobot v3, and the benchmark's
evaluation bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import EmbodimentError


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
    for make in (lambda: SafetyLimits.from_embodiment(sawyer), lambda: LeaderMirror(sawyer)):
        with pytest.raises(EmbodimentError, match="joint-position robots only; embodiment sawyer takes end_effector"):
            make()
    with pytest.raises(EmbodimentError, match="collect-metaworld"):
        make_env("sawyer", "reach")
