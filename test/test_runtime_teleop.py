"""Leader-arm teleoperation rules without ROS: joint-limit clamping, velocity-limited steps and the deadman."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import CommandError, ConfigError
from gen0_policy.runtime.teleop import LeaderMirror, MirrorConfig


def test_mirror_core_limits_and_deadman() -> None:
    emb = load_embodiment("panda")
    mirror = LeaderMirror(emb, MirrorConfig(timeout_s=0.1, max_velocity_scale=1.0))
    assert mirror.step(0.0, 0.01) is None and mirror.state == "waiting"
    leader = emb.home.copy()
    leader[0] = 10.0
    mirror.on_leader(emb.joint_names, leader, now=0.0)
    assert mirror.step(0.0, 0.01) is None, "never command before the follower's pose is known"
    mirror.on_follower(emb.home)
    first = mirror.step(0.01, 0.01)
    np.testing.assert_allclose(first[0], emb.velocity_limits[0] * 0.01)  # one velocity-limited step
    for k in range(500):
        mirror.on_leader(emb.joint_names, leader, now=0.02 + k * 0.01)
        target = mirror.step(0.02 + k * 0.01, 0.01)
    assert target[0] == pytest.approx(emb.upper[0]) and emb.within_limits(target)
    assert mirror.state == "mirroring"
    assert mirror.step(10.0, 0.01) is None and mirror.state == "stale"
    with pytest.raises(CommandError, match="lacks joints"):
        mirror.on_leader(["joint1"], [0.0], now=0.0)
    with pytest.raises(CommandError, match="NaN"):
        mirror.on_leader(emb.joint_names, np.full(emb.dof, np.nan), now=0.0)
    with pytest.raises(ConfigError, match="lacks"):
        LeaderMirror(emb, MirrorConfig(joint_map={"leader_j1": "nope"}))
