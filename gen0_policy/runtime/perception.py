"""The perception stream: one latest-wins, timestamped slot per camera and one for the joint state.

Sensors arrive at their own rates on their own threads; the inference worker only ever wants the
newest complete observation and how old it is. Bad input is rejected here, with a reason the status
can show, and never overwrites the last good value.

Cameras lag joint states (rendering, encoding, transport: 100 ms and more is common), but a policy is
trained on images and joint states taken at the same instant. With ``synchronize_joints`` an
observation pairs the images with the joint state measured when its oldest image was (interpolated
from a short history), and is stamped at that instant; the runtime then conditions the policy on what
was commanded since."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gen0_policy.errors import ObservationError
from gen0_policy.runtime.clock import Clock, MonotonicClock
from gen0_policy.runtime.trajectory import sample_history

JOINTS = "joint_states"
# Policy-input key the runtime adds: the (D,) target its stream commanded one step before a chunk's row 0
# (absent before the first command). An end-effector plan continues from it (runtime/end_effector.py).
COMMANDED = "commanded_positions"
# Policy-input key the runtime adds: ((D,) lower, (D,) upper), the bounds its safety filter holds the targets
# in now (the embodiment's, or a task's tighter workspace). An end-effector plan's running sum stops at them
# as the robot's own target does (Meta-World clips its mocap to them), so it never winds up past them.
WORKSPACE = "workspace_bounds"


@dataclass(frozen=True)
class Stamped:
    """A value, the time it was measured (``stamp``) and the time the runtime received it."""

    value: np.ndarray
    stamp: float
    received: float


@dataclass(frozen=True)
class Observation:
    """A complete snapshot: the newest joint state and the newest image of every camera."""

    joint_positions: np.ndarray  # (D,)
    images: dict[str, np.ndarray]  # cam -> (H, W, 3) uint8
    stamps: dict[str, float]  # source -> stamp
    seq: int  # increases with every accepted update

    @property
    def stamp(self) -> float:
        """The oldest part's stamp: an observation is only as fresh as its stalest part."""
        return min(self.stamps.values())

    @property
    def newest_stamp(self) -> float:
        return max(self.stamps.values())

    def age(self, now: float) -> float:
        return now - self.stamp

    def stalest(self) -> str:
        return min(self.stamps, key=self.stamps.__getitem__)

    def only(self, *sources: str) -> Observation:
        """The same snapshot restricted to ``sources`` (images kept only for cameras among them)."""
        images = {cam: im for cam, im in self.images.items() if cam in sources}
        return Observation(self.joint_positions, images, {s: self.stamps[s] for s in sources}, self.seq)

    def to_policy_input(self, embodiment: str, instruction: str) -> dict[str, Any]:
        return {
            "embodiment": embodiment,
            "instruction": instruction,
            "joint_positions": self.joint_positions.astype(np.float32),
            "images": dict(self.images),
        }


@dataclass
class PerceptionStream:
    """Latest-wins buffers. ``cameras`` maps each camera name to its expected ``(height, width)``
    (or ``None`` to accept any size); ``dof`` is the joint-state length."""

    dof: int
    cameras: Mapping[str, tuple[int, int] | None] = field(default_factory=dict)
    clock: Clock = field(default_factory=MonotonicClock)
    future_tolerance: float = 0.5  # s a stamp may lie ahead of the clock before it is a clock mismatch
    # Per-joint speeds (units/s) no real motion exceeds; a faster change between two joint states is
    # a teleport (simulator reset, estimator reinitialised) and is counted in ``joint_jumps``.
    joint_speed_limits: np.ndarray | None = None
    # (lower, upper) joint limits: a joint state further outside them than a quarter of the joint's range
    # is not a measurement (a garbage value, a unit error) and is refused, not re-anchored to.
    joint_bounds: tuple[np.ndarray, np.ndarray] | None = None
    synchronize_joints: bool = False  # pair images with the joint state of their time (module docstring)
    joint_history_seconds: float = 1.0  # how far back that joint state can be found

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._slots: dict[str, Stamped] = {}
        self._joint_history: deque[tuple[float, np.ndarray]] = deque()
        # Bumped when there is something new to look at: a frame from every camera since the last bump
        # (or, without cameras, a joint state). Joint states alone arrive at 200 Hz; counting them, the
        # worker inferred back to back on the same frames (with synchronize_joints, the same input) and
        # starved the simulator's renderer and the control tick on a 2-core machine.
        self._seq = 0
        self._new_frames: set[str] = set()
        self.last_error: str = ""
        self.errors: dict[str, str] = {}  # source -> why its last input was refused (cleared on the next good one)
        self.rejected = 0
        self.joint_jumps = 0
        self.joint_jump_reason = ""
        self.out_of_order = 0  # messages dropped for a stamp older than the one held
        self.before_start = 0  # measurements stamped before the task began (clear(not_before)), dropped
        self._not_before = -math.inf

    @property
    def sources(self) -> Sequence[str]:
        return [JOINTS, *self.cameras]

    def _accept(self, source: str, value: np.ndarray, stamp: float | None) -> None:
        now = self.clock.now()
        stamp = now if stamp is None else float(stamp)
        if not np.isfinite(stamp):
            self._reject(f"{source}: stamp {stamp} is not finite", source)
        if stamp > now + self.future_tolerance:
            self._reject(
                f"{source}: stamp {stamp:.3f} is {stamp - now:.3f} s ahead of the runtime clock; "
                "do the sensors and the runtime use the same time (use_sim_time)?",
                source,
            )
        with self._lock:
            if stamp < self._not_before:
                self.before_start += 1
                return  # taken before the task began (a frame of the scene before a reset, still in flight)
            previous = self._slots.get(source)
            if previous is not None and stamp < previous.stamp:
                self.out_of_order += 1
                return  # out-of-order delivery: latest wins by stamp, not by arrival; checked before all else
            if source == JOINTS:
                self._check_jump(value, stamp, previous)
            if source != JOINTS:
                self._new_frames.add(source)
            if (source == JOINTS and not self.cameras) or self._new_frames.issuperset(self.cameras):
                self._seq += 1
                self._new_frames.clear()
            self._slots[source] = Stamped(value, stamp, now)
            if source == JOINTS and self.synchronize_joints:
                history = self._joint_history
                history.append((stamp, value))
                while history and history[0][0] < stamp - self.joint_history_seconds:
                    history.popleft()
            self.errors.pop(source, None)
            self._lock.notify_all()

    def _reject(self, message: str, source: str = "") -> None:
        self.note_rejection(message, source)
        raise ObservationError(message)

    def note_rejection(self, message: str, source: str = "") -> None:
        """Record input refused before it got here (e.g. an unsupported image encoding), for the status."""
        with self._lock:
            self.last_error = message
            self.rejected += 1
            if source:
                self.errors[source] = message

    def why(self, sources: Sequence[str]) -> str:
        """Why these sources have no fresh data, as far as rejected input tells ("" if nothing was refused)."""
        with self._lock:
            return "; ".join(self.errors[s] for s in sources if s in self.errors)

    def put_joints(self, positions: np.ndarray, stamp: float | None = None) -> None:
        """Accept a joint-state vector in the embodiment's joint order; NaN/inf or wrong length is rejected."""
        value = np.asarray(positions, dtype=np.float64)
        if value.shape != (self.dof,):
            self._reject(f"joint state has shape {value.shape}, expected ({self.dof},); missing joints?", JOINTS)
        if not np.all(np.isfinite(value)):
            bad = np.flatnonzero(~np.isfinite(value)).tolist()
            self._reject(f"joint state contains NaN/inf at indices {bad}", JOINTS)
        if self.joint_bounds is not None:
            lower, upper = self.joint_bounds
            margin = 0.25 * (upper - lower)
            outside = np.flatnonzero((value < lower - margin) | (value > upper + margin))
            if outside.size:
                i = int(outside[0])
                self._reject(
                    f"joint state puts joint {i} at {value[i]:.4g}, far outside its limits [{lower[i]:.3f}, "
                    f"{upper[i]:.3f}]; a unit or wiring error?",
                    JOINTS,
                )
        self._accept(JOINTS, value.copy(), stamp)

    def _check_jump(self, value: np.ndarray, stamp: float, previous: Stamped | None) -> None:
        """Count a joint state that moved faster than any joint can (called under the lock, after the
        out-of-order drop: a stale message is never compared with a newer one)."""
        if self.joint_speed_limits is None or previous is None:
            return
        dt = max(stamp - previous.stamp, 0.0)
        limited = np.isfinite(self.joint_speed_limits)  # inf: exempt (grippers)
        allowed = 2.0 * np.where(limited, self.joint_speed_limits, 0.0) * dt + 0.02
        excess = np.where(limited, np.abs(value - previous.value) - allowed, -np.inf)
        worst = int(np.argmax(excess))
        if excess[worst] > 0:
            self.joint_jumps += 1
            jump = abs(value[worst] - previous.value[worst])
            self.joint_jump_reason = f"joint {worst} jumped {jump:.3f} in {dt:.3f} s"

    def put_image(self, camera: str, image: np.ndarray, stamp: float | None = None) -> None:
        """Accept an ``(H, W, 3)`` uint8 RGB image from a known camera of the expected size."""
        if camera not in self.cameras:
            self._reject(f"unknown camera {camera!r}; expected one of {list(self.cameras)}")
        value = np.asarray(image)
        if value.dtype != np.uint8 or value.ndim != 3 or value.shape[2] != 3:
            self._reject(f"camera {camera}: image must be (H, W, 3) uint8 RGB, got {value.shape} {value.dtype}", camera)
        expected = self.cameras[camera]
        if expected is not None and tuple(value.shape[:2]) != tuple(expected):
            got, want = f"{value.shape[1]}x{value.shape[0]}", f"{expected[1]}x{expected[0]}"
            self._reject(f"camera {camera}: image is {got}, expected {want}", camera)
        self._accept(camera, value, stamp)

    def latest(self) -> Observation | None:
        """The newest value of every source as it is (what supervision checks for staleness), or ``None``
        until every source has delivered once."""
        with self._lock:
            if any(s not in self._slots for s in self.sources):
                return None
            return self._snapshot()

    def _snapshot(self, synchronize: bool = False) -> Observation:
        slots = self._slots
        stamps = {s: slots[s].stamp for s in self.sources}
        joints = slots[JOINTS].value
        if synchronize and self.synchronize_joints and self.cameras and len(self._joint_history) > 1:
            image_time = min(stamps[cam] for cam in self.cameras)
            if image_time < stamps[JOINTS]:
                joints = sample_history(self._joint_history, np.array([image_time]))[0]
                stamps[JOINTS] = max(image_time, self._joint_history[0][0])
        return Observation(
            joint_positions=joints,
            images={cam: slots[cam].value for cam in self.cameras},
            stamps=stamps,
            seq=self._seq,
        )

    def wait_newer(self, seq: int, timeout: float) -> Observation | None:
        """Block until a complete observation newer than ``seq`` exists (or ``timeout`` s pass); the
        observation to act on, so its joints are synchronized to its images if so configured."""
        with self._lock:
            ready = self._lock.wait_for(
                lambda: self._seq > seq and all(s in self._slots for s in self.sources), timeout=timeout
            )
            return self._snapshot(synchronize=True) if ready else None

    def wait_fresh(self, seq: int, max_age: float, timeout: float = 0.05) -> tuple[Observation | None, int]:
        """:meth:`wait_newer`, but only an observation at most ``max_age`` s old is returned (else None);
        with the seq to wait past next time, so a stale observation is not looked at twice."""
        observation = self.wait_newer(seq, timeout)
        if observation is None:
            return None, seq
        if observation.age(self.clock.now()) > max_age:
            return None, observation.seq
        return observation, observation.seq

    def latest_joints(self) -> np.ndarray | None:
        """The newest joint state alone (the runtime starts from it before any camera has spoken)."""
        with self._lock:
            slot = self._slots.get(JOINTS)
            return None if slot is None else slot.value.copy()

    def joints_stamp(self) -> float | None:
        """The newest joint state's stamp (s, runtime clock)."""
        with self._lock:
            slot = self._slots.get(JOINTS)
            return None if slot is None else slot.stamp

    def missing(self) -> list[str]:
        with self._lock:
            return [s for s in self.sources if s not in self._slots]

    def clear(self, not_before: float = -math.inf) -> None:
        """Forget everything (after a clock jump every stamp is meaningless); with ``not_before``, also
        drop what arrives later but was stamped before it (a task begins: images take 70-280 ms to
        arrive through ROS here, so frames of the scene before a reset came after the goal)."""
        with self._lock:
            self._not_before = not_before
            self._slots.clear()
            self._joint_history.clear()
            self._new_frames.clear()
            self._seq += 1
