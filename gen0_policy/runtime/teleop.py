"""Leader-arm teleoperation: a second (leader) arm's joint positions become the follower's targets.

This is how hardware demonstrations are made: the person moves the leader, the follower mirrors
it, and the recorder bags the follower's commands as the actions. Three safety rules hold here,
not in the ROS node: targets are clamped to the follower's joint limits, each step moves at most
``max_velocity_scale`` x the joint velocity limits (so engaging, or a leader jump, never snaps
the follower), and a deadman timeout stops commanding as soon as the leader data goes stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CommandError, ConfigError


@dataclass(frozen=True)
class MirrorConfig:
    timeout_s: float = 0.25  # leader data older than this stops commanding (deadman)
    max_velocity_scale: float = 0.5  # fraction of each joint's velocity limit the follower may move at
    joint_map: dict[str, str] = field(default_factory=dict)  # leader joint -> follower joint; empty = same names

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"deadman timeout must be positive, got {self.timeout_s} s")
        if not 0 < self.max_velocity_scale <= 1:
            raise ConfigError(f"max_velocity_scale must be in (0, 1], got {self.max_velocity_scale}")


class LeaderMirror:
    """Turns leader joint states into rate-limited, clamped follower position targets."""

    def __init__(self, embodiment: Embodiment, config: MirrorConfig | None = None) -> None:
        embodiment.require_joint_space("leader-follower teleoperation (joint mirroring)")
        self.embodiment = embodiment
        self.config = config or MirrorConfig()
        follower = set(embodiment.joint_names)
        unknown = sorted(set(self.config.joint_map.values()) - follower)
        if unknown:
            raise ConfigError(
                f"joint_map names follower joints {unknown} that {embodiment.name} lacks; "
                f"its joints are {list(embodiment.joint_names)}"
            )
        # follower joint -> leader joint name
        inverse = {f: leader for leader, f in self.config.joint_map.items()}
        self.leader_names = [inverse.get(name, name) for name in embodiment.joint_names]
        self._leader: np.ndarray | None = None
        self._leader_time = -np.inf
        self._follower: np.ndarray | None = None
        self._last: np.ndarray | None = None  # last commanded target; None = not engaged
        self._tripped = False
        self._max_step = embodiment.velocity_limits * self.config.max_velocity_scale

    @property
    def state(self) -> str:
        """waiting (no leader data or follower pose yet), mirroring, or stale (deadman tripped)."""
        if self._last is not None:
            return "mirroring"
        return "stale" if self._tripped else "waiting"

    def on_leader(self, names: Sequence[str], positions: Sequence[float], now: float) -> None:
        """A leader joint state (any joint order); raises CommandError naming missing joints or NaN."""
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.leader_names if n not in index]
        if missing:
            raise CommandError(f"leader joint state lacks joints {missing}; it has {list(names)}")
        values = np.asarray(positions, dtype=np.float64)[[index[n] for n in self.leader_names]]
        if not np.all(np.isfinite(values)):
            raise CommandError(f"leader joint state has NaN/inf positions: {values.tolist()}")
        self._leader, self._leader_time = values, now

    def on_follower(self, positions: np.ndarray) -> None:
        """The follower's measured positions (embodiment order): where an engagement starts from."""
        self._follower = np.asarray(positions, dtype=np.float64)

    def step(self, now: float, dt: float) -> np.ndarray | None:
        """Target for this control tick, or None (do not command) while waiting or stale."""
        if self._leader is None or now - self._leader_time > self.config.timeout_s:
            self._tripped = self._tripped or self._leader is not None
            self._last = None  # re-engage from the follower's measured pose when data returns
            return None
        self._tripped = False
        if self._last is None:
            if self._follower is None:
                return None  # never command without knowing where the follower is
            self._last = np.clip(self._follower, self.embodiment.lower, self.embodiment.upper)
        target = np.clip(self._leader, self.embodiment.lower, self.embodiment.upper)
        limit = self._max_step * dt
        self._last = self._last + np.clip(target - self._last, -limit, limit)
        return self._last.copy()
