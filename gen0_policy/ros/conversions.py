"""Message <-> numpy: the only module that builds and reads rclpy messages. Nodes call these and
hand plain arrays to the core; bad input raises ObservationError (what we observe) or CommandError
(what we are told to do) with a message naming what is wrong and what is supported. The field rules
the bag reader shares (stamps, image decoding) live in :mod:`gen0_policy.messages`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from gen0_msgs.msg import ActionChunk, PolicyStatus
from gen0_policy.commands import TrajectoryCommand
from gen0_policy.embodiment import CameraSpec
from gen0_policy.errors import ObservationError
from gen0_policy.messages import image_to_rgb, split_seconds, stamp_seconds
from gen0_policy.runtime.status import RuntimeStatus
from gen0_policy.runtime.trajectory import Chunk

# ---------------------------------------------------------------- time


def to_seconds(stamp: Time | Duration) -> float:
    """builtin_interfaces Time or Duration -> float seconds."""
    return stamp_seconds(stamp)


def to_time(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time (ns resolution)."""
    sec, nanosec = split_seconds(seconds)
    if sec < 0:
        raise ValueError(f"a Time cannot be negative, got {seconds} s")
    return Time(sec=sec, nanosec=nanosec)


def to_duration(seconds: float) -> Duration:
    """Float seconds -> builtin_interfaces/Duration (negative allowed: sec < 0, 0 <= nanosec < 1e9)."""
    sec, nanosec = split_seconds(seconds)
    return Duration(sec=sec, nanosec=nanosec)


def _stamp(stamp: Time | float | None) -> Time:
    if stamp is None:
        return Time()
    return stamp if isinstance(stamp, Time) else to_time(float(stamp))


# ---------------------------------------------------------------- images


def image_to_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB, respecting ``step`` (row padding); see
    :func:`gen0_policy.messages.image_to_rgb`, the one decoder the bag reader uses too."""
    return image_to_rgb(msg)


def array_to_image(rgb: np.ndarray, stamp: Time | float | None = None, frame_id: str = "") -> Image:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8 (no row padding)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ObservationError(f"need an (H, W, 3) uint8 RGB array for an rgb8 image, got {rgb.shape} {rgb.dtype}")
    h, w, _ = rgb.shape
    msg = Image(height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w)
    msg.header.stamp = _stamp(stamp)
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def pinhole_intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """3x3 K of a pinhole camera with square pixels and vertical field of view ``fovy_deg`` (MuJoCo's model)."""
    if not 0 < fovy_deg < 180:
        raise ObservationError(f"fovy must be in (0, 180) degrees, got {fovy_deg}")
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def camera_info(
    spec: CameraSpec,
    width: int | None = None,
    height: int | None = None,
    stamp: Time | float | None = None,
    frame_id: str = "",
) -> CameraInfo:
    """sensor_msgs/CameraInfo of an ideal (undistorted) pinhole camera from a CameraSpec."""
    width, height = int(width or spec.width), int(height or spec.height)
    k = pinhole_intrinsics(spec.fovy, width, height)
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp = _stamp(stamp)
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


# ---------------------------------------------------------------- joint states


class JointStateArrays(NamedTuple):
    """A JointState in a given joint order; velocities/efforts are NaN where the message has none."""

    positions: np.ndarray  # (J,)
    velocities: np.ndarray  # (J,)
    efforts: np.ndarray  # (J,)
    stamp: float  # s


def joint_state_to_arrays(msg: JointState, joint_names: Sequence[str], allow_nan: bool = False) -> JointStateArrays:
    """Pick ``joint_names`` out of a JointState (any order, extra joints ignored).

    Raises ObservationError naming missing joints, malformed lengths, or (unless ``allow_nan``)
    joints whose position is NaN/inf."""
    names = list(msg.name)
    n = len(names)
    if len(msg.position) != n:
        raise ObservationError(f"JointState has {n} names but {len(msg.position)} positions")
    for key in ("velocity", "effort"):
        if len(getattr(msg, key)) not in (0, n):
            raise ObservationError(f"JointState has {n} names but {len(getattr(msg, key))} {key} values")
    index = {name: i for i, name in enumerate(names)}
    if len(index) != n:  # which of two values is the joint's? refused before any other check
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ObservationError(f"JointState lists joints {twice} more than once; each joint must appear once")
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise ObservationError(f"JointState lacks joints {missing}; it has {names}")
    idx = np.array([index[j] for j in joint_names], dtype=np.int64)

    def pick(values: Sequence[float]) -> np.ndarray:
        if len(values) == 0:
            return np.full(len(idx), np.nan)
        return np.asarray(values, dtype=np.float64)[idx]

    positions = pick(msg.position)
    if not allow_nan and not np.all(np.isfinite(positions)):
        bad = [j for j, p in zip(joint_names, positions, strict=True) if not math.isfinite(p)]
        raise ObservationError(f"JointState positions of joints {bad} are not finite (NaN or inf)")
    return JointStateArrays(positions, pick(msg.velocity), pick(msg.effort), to_seconds(msg.header.stamp))


def joint_state_positions(msg: JointState, joint_names: Sequence[str]) -> np.ndarray:
    """Positions of ``joint_names`` in that order; see :func:`joint_state_to_arrays`."""
    return joint_state_to_arrays(msg, joint_names).positions


def joint_state_msg(
    joint_names: Sequence[str],
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    efforts: np.ndarray | None = None,
    stamp: Time | float | None = None,
) -> JointState:
    n = len(joint_names)
    msg = JointState()
    msg.header.stamp = _stamp(stamp)
    msg.name = list(joint_names)
    for key, values in (("position", positions), ("velocity", velocities), ("effort", efforts)):
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (n,):
            raise ObservationError(
                f"JointState {key} needs {n} values for joints {list(joint_names)}, got {values.size}"
            )
        setattr(msg, key, values.tolist())
    return msg


# ---------------------------------------------------------------- commands


def joint_trajectory_to_command(msg: JointTrajectory) -> TrajectoryCommand:
    """trajectory_msgs/JointTrajectory -> TrajectoryCommand (header stamp = start time, 0 = now).

    Raises CommandError for ragged points; names and limits are checked by the controller."""
    points = list(msg.points)
    return TrajectoryCommand.from_points(
        joint_names=list(msg.joint_names),
        times=[to_seconds(p.time_from_start) for p in points],
        positions=[list(p.positions) for p in points],
        velocities=[list(p.velocities) for p in points],
        accelerations=[list(p.accelerations) for p in points],
        start_time=to_seconds(msg.header.stamp),
    )


def joint_trajectory_msg(
    joint_names: Sequence[str],
    times: Sequence[float] | np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    accelerations: np.ndarray | None = None,
    start_time: Time | float | None = 0.0,
) -> JointTrajectory:
    """Arrays -> trajectory_msgs/JointTrajectory: ``positions`` (N, J) reached at ``times`` (N,) s
    after ``start_time`` (0 = when the controller receives it)."""
    cmd = TrajectoryCommand(
        joint_names=tuple(joint_names),
        times=np.asarray(times, dtype=np.float64),
        positions=positions,
        velocities=velocities,
        accelerations=accelerations,
    )
    msg = JointTrajectory()
    msg.header.stamp = _stamp(start_time)
    msg.joint_names = list(cmd.joint_names)
    for i, t in enumerate(cmd.times):
        point = JointTrajectoryPoint(time_from_start=to_duration(float(t)))
        point.positions = cmd.positions[i].tolist()
        if cmd.velocities is not None:
            point.velocities = cmd.velocities[i].tolist()
        if cmd.accelerations is not None:
            point.accelerations = cmd.accelerations[i].tolist()
        msg.points.append(point)
    return msg


def command_to_joint_trajectory(cmd: TrajectoryCommand) -> JointTrajectory:
    return joint_trajectory_msg(
        cmd.joint_names, cmd.times, cmd.positions, cmd.velocities, cmd.accelerations, cmd.start_time
    )


def float64_multi_array_to_array(msg: Float64MultiArray) -> np.ndarray:
    """std_msgs/Float64MultiArray -> (N,) float64 (forward_command_controller reads the flat data and
    ignores the layout). Values are checked (length, finite, limits) by the controller, which knows the joints."""
    return np.asarray(msg.data, dtype=np.float64).reshape(-1)


def float64_multi_array_msg(values: Sequence[float] | np.ndarray, label: str = "") -> Float64MultiArray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    msg = Float64MultiArray()
    if label:
        msg.layout.dim = [MultiArrayDimension(label=label, size=values.size, stride=values.size)]
    msg.data = values.tolist()
    return msg


def pose_stamped_msg(xyz: Sequence[float] | np.ndarray, frame_id: str, stamp: Time | None = None) -> PoseStamped:
    """A hand position target for a Cartesian controller. The orientation is the identity: an action of
    displacements does not turn the hand, so the controller's frames must make the identity its pose."""
    x, y, z = (float(v) for v in np.asarray(xyz, dtype=np.float64).reshape(3))
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    msg.pose.orientation.w = 1.0
    return msg


def pose_stamped_to_array(msg: PoseStamped) -> np.ndarray:
    """geometry_msgs/PoseStamped -> (3,) position; finiteness and bounds are the controller's to check."""
    p = msg.pose.position
    return np.array([p.x, p.y, p.z], dtype=np.float64)


def action_chunk_msg(chunk: Chunk, joint_names: Sequence[str]) -> ActionChunk:
    """Every chunk the policy computes, stamped with its start (row 0 = the observation's time)."""
    msg = ActionChunk(
        joint_names=list(joint_names),
        step_dt=chunk.step_dt,
        horizon=chunk.horizon,
        positions=chunk.actions.astype(np.float64).reshape(-1).tolist(),
        committed_prefix_length=chunk.committed,
        uncertainty=chunk.uncertainty,
        inference_latency=chunk.inference_latency,
        checkpoint_id=chunk.checkpoint_id,
    )
    msg.header.stamp = to_time(chunk.t0)
    msg.observation_stamp = to_time(chunk.observation_stamp)
    return msg


def policy_status_msg(status: RuntimeStatus | None, embodiment: str, fault: str, stamp: Time) -> PolicyStatus:
    """What the policy node says it does and why; ``status`` None: no runtime (not configured, or a
    configure that failed with ``fault``)."""
    msg = PolicyStatus(embodiment=embodiment)
    msg.header.stamp = stamp
    if status is None:
        msg.state = PolicyStatus.STATE_FAULT if fault else PolicyStatus.STATE_IDLE
        msg.reason = fault or "not configured"
        return msg
    for name in ("reason", "uncertainty", "inference_latency", "observation_age", "control_rate", "chunk_count"):
        setattr(msg, name, getattr(status, name))
    msg.state, msg.uncertainty_threshold = int(status.state), min(status.uncertainty_threshold, 3.0e38)
    msg.checkpoint_id, msg.instruction = status.checkpoint_id, status.instruction
    msg.uncertainty_signal = status.uncertainty_signal
    msg.awaiting_goal = status.awaiting_goal
    msg.warnings = list(status.warnings)
    return msg
