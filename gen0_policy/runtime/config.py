"""Runtime settings, validated once so the control path never has to."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from gen0_policy.errors import ConfigError
from gen0_policy.runtime.uncertainty import SIGNALS

MODES = ("harmonic", "synchronous")


@dataclass(frozen=True)
class RuntimeConfig:
    mode: str = "synchronous"  # synchronous: infer at rest, then act the chunk; harmonic: think while acting
    control_rate_hz: float = 100.0  # action-stream rate, Hz (1..500)
    max_observation_age: float = 0.5  # s; older observations hold (synchronous: only joints while a chunk runs)
    uncertainty_threshold: float = math.inf  # the signal's value above which the runtime holds (inf: never)
    num_samples: int = 1  # action samples per inference; >= 2 to measure the sample spread
    uncertainty_signal: str = "sample_spread"  # which signal of runtime/uncertainty.py decides (SIGNALS)
    # image_novelty above which the runtime holds whatever uncertainty_signal says: a camera shows what
    # the training data never did (covered, blocked, another scene); inf: never. The score is about 1 on
    # training-like frames (at most 3.3 in 90 held-out Panda episodes, 10-12 with the scene camera
    # covered or half blocked: docs/results/uncertainty.json). NaN (no novelty.json) never holds.
    novelty_threshold: float = 5.0
    worker_timeout: float = 2.0  # s an inference may run before the worker counts as hung
    latency_ema: float = 0.3  # weight of the newest latency in the latency estimate
    latency_margin: float = 0.2  # extra fraction of the latency estimate committed for safety
    limit_scale: float = 1.0  # derates the embodiment's velocity and acceleration limits (0..1]
    swap_min_gap: float = 0.5  # fraction of step_dt: waypoints closer than this after a swap are skipped
    # Synchronous mode: fraction of each chunk's steps played before the arm stops and looks again (0.75
    # of 16 = 12, as `gen0 sim rollout` plays). Measured in sim time (benchmarks/lockstep_loop.py, Panda
    # pick_place, seeds 112-119): 1.0 (run to the end, then rest) 2/8, 0.75 6/8. The node's parameter
    # file gives 0, the robot's own (Embodiment.sync_execute_fraction: 0.5 for Meta-World's Sawyer).
    sync_execute_fraction: float = 0.75
    # intra-op threads of the policy's inference, whatever its engine (torch, ONNX Runtime, OpenVINO);
    # 0: all cores but one, which the action stream, the ROS executor and the robot's side keep
    inference_threads: int = 0
    gil_switch_interval: float = 0.001  # s; short so the control thread gets the GIL back promptly
    # rad or m: a measured arm joint this far from its command means the robot was moved by someone
    # else; the stream then restarts from the measured position (0 disables; grippers exempt, as a
    # gripper closed on an object never reaches its command). Teleports are caught without it.
    resync_tolerance: float = 1.0
    # Pair the images with the joint state measured when they were (cameras lag joint states, the policy
    # was trained on simultaneous ones); the chunk then starts at that instant (see perception).
    synchronize_joints: bool = True
    clock_jump_forward: float = 1.0  # s; a larger forward leap between ticks counts as a clock jump
    # s of wall time the runtime clock may stand still (a frozen or paused /clock) before it is a fault
    clock_stall_timeout: float = 1.0
    realtime_priority: int = 0  # SCHED_FIFO priority (1-99) of the action-stream thread; 0: normal scheduling
    worker_realtime_priority: int = 0  # SCHED_FIFO priority of the inference thread (keep below the stream's)
    worker_nice: int = 0  # nice value (-20..19) of the inference thread; < 0 keeps a GIL holder from being starved
    # Fraction of the time the worker may compute. With a real-time worker, < 0.95 keeps the kernel's RT
    # throttling (950 ms per s per CPU) from freezing every real-time thread on its CPU, the stream's too.
    worker_duty_cycle: float = 1.0
    # Harmonic mode: s (runtime clock) from one inference's start to the next; 0 = back to back. Like
    # a synchronous executor's chunk execution, but the stream never pauses: each chunk runs this long
    # before the next takes over, so the policy re-plans less often from its own motion.
    replan_period: float = 0.0
    # s of planned future in each horizon sent to a trajectory controller (then a brake to rest), and s
    # between horizons when no new chunk forces one (see runtime/horizon.py).
    command_horizon: float = 0.5
    horizon_refresh: float = 0.05
    horizon_lead: float = 0.02  # s a horizon starts after the tick that plans it: it must still lie ahead on arrival

    def __post_init__(self) -> None:
        checks = {
            "mode": self.mode in MODES,
            "control_rate_hz": 1.0 <= self.control_rate_hz <= 500.0,
            "max_observation_age": self.max_observation_age > 0,
            "uncertainty_threshold": self.uncertainty_threshold > 0,
            "num_samples": self.num_samples >= 1,
            "uncertainty_signal": self.uncertainty_signal in SIGNALS,
            "novelty_threshold": self.novelty_threshold > 0,
            "worker_timeout": self.worker_timeout > 0,
            "latency_ema": 0 < self.latency_ema <= 1,
            "latency_margin": self.latency_margin >= 0,
            "limit_scale": 0 < self.limit_scale <= 1,
            "swap_min_gap": 0 <= self.swap_min_gap < 1,
            "sync_execute_fraction": 0 < self.sync_execute_fraction <= 1,
            "inference_threads": self.inference_threads >= 0,
            "gil_switch_interval": self.gil_switch_interval >= 0,
            "clock_jump_forward": self.clock_jump_forward > 0,
            "clock_stall_timeout": self.clock_stall_timeout > 0,
            "resync_tolerance": self.resync_tolerance >= 0,
            "realtime_priority": 0 <= self.realtime_priority <= 99,
            "worker_realtime_priority": 0 <= self.worker_realtime_priority <= 99,
            "worker_nice": -20 <= self.worker_nice <= 19,
            "worker_duty_cycle": 0 < self.worker_duty_cycle <= 1,
            "replan_period": self.replan_period >= 0,
            "command_horizon": self.control_rate_hz > 0 and self.command_horizon >= self.period,
            "horizon_refresh": self.horizon_refresh > 0,
            "horizon_lead": 0 <= self.horizon_lead < math.inf,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(
                f"invalid runtime settings: {values}; mode is one of {MODES}, control_rate_hz in [1, 500], "
                "fractions in (0, 1], times and thresholds positive, command_horizon at least one control period"
            )

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate_hz


OUTPUT_MODES = ("joint_trajectory", "forward_position")


def runtime_parameters() -> dict[str, Any]:
    """Node parameters for every runtime setting: {field name: default}, declared under the same names."""
    return {f.name: f.default for f in fields(RuntimeConfig)}


def runtime_config(
    params: Mapping[str, Any], robot_rate_hz: float = 0.0, robot_execute_fraction: float = 0.0
) -> RuntimeConfig:
    """The :class:`RuntimeConfig` in a node's parameters (named as its fields; the others ignored), where
    0 keeps its meaning in the parameter file: ``uncertainty_threshold`` and ``novelty_threshold`` 0 never
    hold, ``command_horizon`` 0 sends one point per control tick (one control period),
    ``control_rate_hz`` 0 is the robot's own rate, ``robot_rate_hz`` (its embodiment file's
    ``control_rate_hz``: the rate its controllers and a simulator's clock run at), and
    ``sync_execute_fraction`` 0 the robot's own, ``robot_execute_fraction`` (its embodiment file's; 0.75
    without one)."""
    settings = {f.name: params[f.name] for f in fields(RuntimeConfig) if f.name in params}
    for threshold in ("uncertainty_threshold", "novelty_threshold"):
        if settings.get(threshold) == 0:
            settings[threshold] = math.inf
    if settings.get("control_rate_hz") == 0 and robot_rate_hz > 0:
        settings["control_rate_hz"] = robot_rate_hz
    if settings.get("sync_execute_fraction") == 0:
        settings["sync_execute_fraction"] = robot_execute_fraction or RuntimeConfig.sync_execute_fraction
    rate = settings.get("control_rate_hz", RuntimeConfig.control_rate_hz)
    if settings.get("command_horizon") == 0 and rate > 0:
        settings["command_horizon"] = 1.0 / rate
    return RuntimeConfig(**settings)


def check_node_parameters(p: dict) -> None:
    """The policy node's parameters that :class:`RuntimeConfig` does not check, or checks only after
    :func:`runtime_config` gave their zeros a meaning: a bad value is refused at configure with what is
    allowed, never found later by a crash."""
    problems = []
    if p["output_mode"] not in OUTPUT_MODES:
        problems.append(f"output_mode must be one of {OUTPUT_MODES}, got {p['output_mode']!r}")
    if not p["checkpoint"]:
        problems.append("parameter 'checkpoint' is empty; pass -p checkpoint:=PATH (a checkpoint folder)")
    # Also refuses NaN. The status is the node's heartbeat: a watcher that calls 1 s of silence a hang
    # (issue 13) needs one at least every 0.5 s, so that a status tick's jitter never looks like one.
    if not 2 <= p["status_rate"] <= 1000:
        problems.append(f"status_rate must be in [2, 1000] Hz (the status is a heartbeat), got {p['status_rate']}")
    if not 0 < p["uncertain_timeout"] < math.inf:
        problems.append(f"uncertain_timeout must be a positive number of seconds, got {p['uncertain_timeout']}")
    if not 0 <= p.get("command_horizon", 0.0) < math.inf:
        problems.append(f"command_horizon must be >= 0 s (0: one point per control tick), got {p['command_horizon']}")
    for threshold in ("uncertainty_threshold", "novelty_threshold"):
        if not p.get(threshold, 0.0) >= 0:  # also refuses NaN
            problems.append(f"{threshold} must be >= 0 (0 or inf: never hold), got {p[threshold]}")
    if problems:
        raise ConfigError("; ".join(problems))
