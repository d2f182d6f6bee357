"""Embodiment descriptions: validation with messages that say what to fix, derived views."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from gen0_policy.embodiment import Embodiment, available_embodiments, load_embodiment
from gen0_policy.errors import EmbodimentError


def arm(**overrides) -> dict:
    data = {
        "name": "two_link",
        "description": "a planar arm with a gripper",
        "joints": [
            {"name": "j1", "lower": -1.0, "upper": 1.0, "velocity": 2.0, "effort": 10.0, "home": 0.0},
            {"name": "j2", "lower": -2.0, "upper": 2.0, "velocity": 2.0, "effort": 10.0, "home": 0.5},
            {
                "name": "finger",
                "lower": 0.0,
                "upper": 0.04,
                "velocity": 0.1,
                "effort": 20.0,
                "home": 0.04,
                "gripper": True,
            },
        ],
        "cameras": [
            {"name": "scene", "role": "scene"},
            {"name": "wrist", "role": "wrist", "width": 320, "height": 240},
        ],
        "controllers": [
            {"name": "joint_trajectory_controller", "type": "joint_trajectory_controller", "joints": ["j1", "j2"]},
            {"name": "gripper_controller", "type": "forward_position_controller", "joints": ["finger"]},
        ],
    }
    data.update(overrides)
    return data


def test_derived_views():
    e = Embodiment.from_dict(arm())
    assert e.dof == 3
    assert e.joint_names == ("j1", "j2", "finger")
    np.testing.assert_array_equal(e.gripper_mask, [False, False, True])
    np.testing.assert_array_equal(e.joint_indices(["finger", "j1"]), [2, 0])
    assert e.within_limits([0.0, 0.0, 0.02])
    assert not e.within_limits([0.0, 0.0, 0.05])
    assert not e.within_limits([np.nan, 0.0, 0.02])
    assert e.camera("wrist").width == 320
    assert Embodiment.from_dict(e.to_dict()) == e


def test_controllers_name_their_message_and_topic_by_the_ros2_control_conventions():
    panda = load_embodiment("panda")
    arm, gripper = panda.controller("joint_trajectory_controller"), panda.controller("gripper_controller")
    assert arm.trajectory and arm.command_topic == "joint_trajectory_controller/joint_trajectory"
    assert not gripper.trajectory and gripper.command_topic == "gripper_controller/commands"


def test_yaml_round_trip_by_path(tmp_path):
    path = tmp_path / "two_link.yaml"
    path.write_text(yaml.safe_dump(arm()))
    assert load_embodiment(str(path)).joint_names == ("j1", "j2", "finger")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"joints": []}, "no joints"),
        ({"action_space": "torque"}, "action_space must be one of"),
        (
            {"controllers": [{"name": "c", "type": "joint_trajectory_controller", "joints": ["elbow"]}]},
            "unknown joints ['elbow']",
        ),
        ({"controllers": [{"name": "c", "type": "effort_controller", "joints": ["j1"]}]}, "type must be one of"),
        ({"cameras": [{"name": "x", "role": "belly"}]}, "role must be scene, wrist or head"),
        ({"cameras": [{"name": "x", "role": "scene", "rate_hz": 0}]}, "rate_hz must be positive"),
        ({"sync_execute_fraction": 0}, "sync_execute_fraction must be in"),
    ],
)
def test_invalid_descriptions_say_what_is_wrong(change, message):
    with pytest.raises(EmbodimentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Embodiment.from_dict(arm(**change))


def test_joint_limits_validated():
    bad = arm()
    bad["joints"][0]["home"] = 3.0
    with pytest.raises(EmbodimentError, match=r"home 3\.0 outside"):
        Embodiment.from_dict(bad)
    bad = arm()
    bad["joints"][1]["velocity"] = 0
    with pytest.raises(EmbodimentError, match="velocity must be positive"):
        Embodiment.from_dict(bad)


def test_missing_joints_named():
    e = Embodiment.from_dict(arm())
    with pytest.raises(EmbodimentError, match=r"no joints \['wrist_3'\]"):
        e.joint_indices(["j1", "wrist_3"])


def test_unknown_embodiment_lists_available():
    with pytest.raises(EmbodimentError, match="available embodiments are"):
        load_embodiment("no_such_robot")


def test_shipped_descriptions_load():
    for name in available_embodiments():
        e = load_embodiment(name)
        assert e.name == name
        assert e.within_limits(e.home)


def test_each_robot_says_how_much_of_a_chunk_it_plays_and_a_checkpoint_keeps_it():
    """One value per robot for the benchmark, rollouts and the node: 12 of 16 rows for the arms, 8 for
    Meta-World's Sawyer (its benchmark protocol's half chunk)."""
    assert load_embodiment("panda").sync_execute_fraction == 0.75
    sawyer = load_embodiment("sawyer")
    assert sawyer.sync_execute_fraction == 0.5
    assert Embodiment.from_dict(sawyer.to_dict()).sync_execute_fraction == 0.5
    assert (sawyer.sync_execute_steps(16), load_embodiment("panda").sync_execute_steps(16)) == (8, 12)
