"""The simulated robot at its table: position targets in, joint states and camera images out.

This is the whole control surface a ROS node (or a policy) sees: ``set_targets`` is what a
joint_trajectory_controller would command, ``joint_positions``/``joint_velocities``/``joint_efforts``
what a joint_state_broadcaster would publish, ``render`` what a camera driver would send.
"""

from __future__ import annotations

import atexit
import copy
import json
import weakref
from typing import Any

import mujoco
import numpy as np

from gen0_policy.embodiment import Embodiment, load_embodiment
from gen0_policy.errors import CommandError, ConfigError
from gen0_policy.sim.robots import servo_scales
from gen0_policy.sim.scene import Layout, build_spec
from gen0_policy.sim.tasks import Task, task_class


class SimEnv:
    """One MuJoCo world: an embodiment, a task and its objects. Not thread-safe; one per process."""

    def __init__(
        self, embodiment: Embodiment, task: str, seed: int = 0, camera_size: tuple[int, int] | None = None
    ) -> None:
        self.embodiment = embodiment
        self.task_name = task
        self.layout = Layout.from_embodiment(embodiment)
        self.task: Task = task_class(task, embodiment.name)(self.layout)
        self.model = _compiled(embodiment, self.task)
        self.data = mujoco.MjData(self.model)
        self.control_dt = 1.0 / embodiment.control_rate_hz
        self.camera_size = camera_size
        self._n_sub = max(1, round(self.control_dt / self.model.opt.timestep))
        joints = [self.model.joint(n) for n in embodiment.joint_names]
        self._qadr = np.array([j.qposadr[0] for j in joints])
        self._vadr = np.array([j.dofadr[0] for j in joints])
        self._act = np.array([self.model.actuator(f"{n}_servo").id for n in embodiment.joint_names])
        self._scale = servo_scales(embodiment)
        self._renderers: _Renderers = _Renderers()
        self._targets = embodiment.home.copy()
        self.seed = seed
        self.instruction = ""
        self.reset(seed)

    # --- episode -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """Robot at home, objects placed from ``seed`` (the same seed gives the same episode)."""
        if seed is not None:
            self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        mujoco.mj_resetData(self.model, self.data)
        self.instruction = self.task.instructions[int(rng.integers(len(self.task.instructions)))]
        self.data.qpos[self._qadr] = self.embodiment.home
        self._set_coupled_home()
        self.task.reset(self.model, self.data, rng)
        self.set_targets(self.embodiment.home)
        mujoco.mj_forward(self.model, self.data)
        self.step(0.1)  # settle contacts so the first observation is at rest
        self.data.time = 0.0

    def _set_coupled_home(self) -> None:
        """Joints coupled to an action joint by a joint equality (the other finger) start consistent."""
        m = self.model
        action = set(int(m.joint(n).id) for n in self.embodiment.joint_names)
        for eq in range(m.neq):
            if m.eq_type[eq] != mujoco.mjtEq.mjEQ_JOINT:
                continue
            j1, j2 = int(m.eq_obj1id[eq]), int(m.eq_obj2id[eq])
            c0, c1 = m.eq_data[eq, 0], m.eq_data[eq, 1]  # q1 = c0 + c1 * q2 (linear part)
            if j2 in action and j1 not in action:
                self.data.qpos[m.jnt_qposadr[j1]] = c0 + c1 * self.data.qpos[m.jnt_qposadr[j2]]
            elif j1 in action and j2 not in action and c1 != 0:
                self.data.qpos[m.jnt_qposadr[j2]] = (self.data.qpos[m.jnt_qposadr[j1]] - c0) / c1

    @property
    def time(self) -> float:
        return float(self.data.time)

    def success(self) -> bool:
        return self.task.success(self.model, self.data)

    # --- control ---------------------------------------------------------------------------------
    def set_targets(self, q: np.ndarray) -> None:
        """Hold ``q`` (embodiment joint order, rad or m) until the next call; refuses bad commands."""
        q = np.asarray(q, dtype=np.float64)
        emb = self.embodiment
        if q.shape != (emb.dof,):
            raise CommandError(f"{emb.name} expects {emb.dof} targets (joints {list(emb.joint_names)}), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise CommandError(f"targets contain NaN or inf: {q.tolist()}")
        if not emb.within_limits(q):
            bad = [
                n for n, v, lo, hi in zip(emb.joint_names, q, emb.lower, emb.upper, strict=True) if not lo <= v <= hi
            ]
            raise CommandError(f"targets outside joint limits for {bad}; clip to embodiment.lower/upper first")
        self._targets = q.copy()
        self.data.ctrl[self._act] = q * self._scale

    @property
    def targets(self) -> np.ndarray:
        return self._targets.copy()

    def step(self, duration: float | None = None) -> None:
        """Advance physics by ``duration`` s (default one control period), holding the targets."""
        duration = self.control_dt if duration is None else float(duration)
        if duration < 0:
            raise ConfigError(f"step duration must be >= 0, got {duration}")
        n_control = int(duration / self.control_dt + 1e-9)  # whole control periods; never past ``duration``
        for _ in range(n_control):
            mujoco.mj_step(self.model, self.data, nstep=self._n_sub)
            self.task.update(self.model, self.data)
        rest = round((duration - n_control * self.control_dt) / self.model.opt.timestep)
        if rest > 0:
            mujoco.mj_step(self.model, self.data, nstep=rest)
            self.task.update(self.model, self.data)

    # --- state -------------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].astype(np.float64)

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._vadr].astype(np.float64)

    def joint_efforts(self) -> np.ndarray:
        """Servo output per joint (N·m or N; the gripper's in its tendon's units)."""
        return self.data.actuator_force[self._act].astype(np.float64)

    # --- cameras -------------------------------------------------------------------------------------
    def _size(self, camera: str, width: int | None, height: int | None) -> tuple[int, int]:
        spec = self.embodiment.camera(camera)
        default = self.camera_size or (spec.width, spec.height)
        return int(width or default[0]), int(height or default[1])

    def render(self, camera: str, width: int | None = None, height: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB from one of the embodiment's cameras."""
        w, h = self._size(camera, width, height)
        renderer = self._renderers.get((w, h))
        if renderer is None:
            renderer = self._renderers[(w, h)] = mujoco.Renderer(self.model, height=h, width=w)
            if len(self._renderers) == 1:
                # mujoco's EGL backend terminates its display at exit; close our contexts before it
                # (atexit runs in reverse order) instead of in a late __del__ that raises EGL errors.
                atexit.register(_close_at_exit, weakref.ref(self._renderers))
        renderer.update_scene(self.data, camera=camera)
        return renderer.render().copy()

    def observation(self, image_size: tuple[int, int] | None = None) -> dict[str, Any]:
        """What a policy sees: time, joint state and one image per camera (``image_size`` = (W, H))."""
        w, h = image_size if image_size else (None, None)
        return {
            "time": self.time,
            "joint_positions": self.joint_positions(),
            "joint_velocities": self.joint_velocities(),
            "images": {cam.name: self.render(cam.name, w, h) for cam in self.embodiment.cameras},
        }

    def close(self) -> None:
        _close_renderers(self._renderers)

    def __enter__(self) -> SimEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Renderers(dict):
    """One mujoco.Renderer per (width, height); a dict subclass so atexit can hold it weakly."""


def _close_renderers(renderers: dict[tuple[int, int], mujoco.Renderer]) -> None:
    for renderer in renderers.values():
        renderer.close()
    renderers.clear()


def _close_at_exit(ref: weakref.ref) -> None:
    renderers = ref()
    if renderers is not None:
        _close_renderers(renderers)


_MODELS: dict[tuple[str, str, str], mujoco.MjModel] = {}  # compiled worlds; loading meshes is the slow part


def _compiled(embodiment: Embodiment, task: Task) -> mujoco.MjModel:
    """A private copy of the compiled world (tasks move bodies in their model on reset)."""
    key = (embodiment.name, task.name, json.dumps(embodiment.sim, sort_keys=True, default=str))
    if key not in _MODELS:
        spec = build_spec(embodiment)
        task.build(spec)
        _MODELS[key] = spec.compile()
    return copy.copy(_MODELS[key])


def make_env(
    embodiment: str | Embodiment, task: str, seed: int = 0, camera_size: tuple[int, int] | None = None
) -> SimEnv:
    """A world for ``embodiment`` (name, YAML path or description) doing ``task``, reset with ``seed``."""
    emb = embodiment if isinstance(embodiment, Embodiment) else load_embodiment(embodiment)
    emb.require_joint_space("our MuJoCo worlds", "for Meta-World's Sawyer use gen0 sim collect-metaworld")
    return SimEnv(emb, task, seed=seed, camera_size=camera_size)
