"""Tabletop tasks: the objects a task adds to the world, their seeded randomization, a success check,
and the natural-language instructions a policy is conditioned on.

A task instance lives with one environment; ``reset`` draws a new layout from the given generator
and ``update`` runs after every control step (for checks that latch, like a button that was pressed).
Experts read object poses through ``targets``: privileged knowledge a teleoperator has by looking.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import mujoco
import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.sim.scene import Layout

ARMS = ("ur5e", "panda")
ALL = ("ur5e", "panda", "g1")
BOX = mujoco.mjtGeom.mjGEOM_BOX
RED = [0.85, 0.15, 0.12, 1.0]
BLUE = [0.15, 0.35, 0.85, 1.0]
GREEN = [0.15, 0.7, 0.25, 1.0]
YELLOW = [0.95, 0.8, 0.1, 1.0]


def _add_cube(
    spec: mujoco.MjSpec, name: str, half: float, rgba: list[float], mass: float = 0.05, friction: float = 1.5
) -> None:
    body = spec.worldbody.add_body(name=name, pos=[0.5, 0.0, half])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(
        name=name, type=BOX, size=[half] * 3, rgba=rgba, mass=mass, friction=[friction, 0.01, 0.001], condim=4,
        solref=[0.005, 1.0], priority=1,  # its friction wins over the default of whatever touches it
    )  # fmt: skip


def _add_marker(spec: mujoco.MjSpec, name: str, size: list[float], rgba: list[float], type_=BOX) -> None:
    """A visual-only, static marker (goal pad, target sphere) moved by ``reset`` via mocap."""
    body = spec.worldbody.add_body(name=name, mocap=True, pos=[0.5, 0.0, 0.0])
    body.add_geom(name=name, type=type_, size=size, rgba=rgba, contype=0, conaffinity=0, group=1)


def _add_button(spec: mujoco.MjSpec, name: str, rgba: list[float]) -> None:
    """A spring-loaded push button: a fixed base and a cap on a vertical slide joint."""
    base = spec.worldbody.add_body(name=f"{name}_base", pos=[0.5, 0.0, 0.015])
    base.add_geom(type=BOX, size=[0.045, 0.045, 0.015], rgba=[0.25, 0.25, 0.27, 1.0])
    cap = base.add_body(name=name, pos=[0, 0, 0.025])
    cap.add_joint(
        name=f"{name}_joint", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1], range=[-0.015, 0.0],
        stiffness=40.0, damping=2.0, springref=0.0,
    )  # fmt: skip
    cap.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.03, 0.01, 0], rgba=rgba, mass=0.02)
    spec.add_exclude(bodyname1=f"{name}_base", bodyname2=name)  # the cap sinks into its base


def _set_free(model: mujoco.MjModel, data: mujoco.MjData, joint: str, pos: np.ndarray, yaw: float = 0.0) -> None:
    adr = model.joint(joint).qposadr[0]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    vadr = model.joint(joint).dofadr[0]
    data.qvel[vadr : vadr + 6] = 0.0


class Task(ABC):
    """One task family. Subclasses set the class variables and the four methods."""

    name: ClassVar[str]
    instructions: ClassVar[tuple[str, ...]]  # the first is the canonical phrasing
    embodiments: ClassVar[tuple[str, ...]]
    max_duration: ClassVar[float]  # s of sim time an episode may take
    grasped: ClassVar[str | None] = None  # the body the gripper must pick up, on grasp tasks

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.targets: dict[str, np.ndarray] = {}  # named positions (m, world frame) for experts

    def sample_xy(self, rng: np.random.Generator, half_scale: float = 1.0, offset=(0.0, 0.0)) -> np.ndarray:
        half = self.layout.half * half_scale
        return self.layout.center + np.asarray(offset) + rng.uniform(-half, half)

    @abstractmethod
    def build(self, spec: mujoco.MjSpec) -> None:
        """Add this task's bodies to the world spec."""

    @abstractmethod
    def reset(self, model: mujoco.MjModel, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Place objects (qpos, mocap or model body poses) and fill ``self.targets``."""

    def update(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:  # noqa: B027 - optional hook
        """Called after every control step."""

    @abstractmethod
    def success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        """Whether the task is achieved in the current state (or was, for latching checks)."""

    def tcp(self, data: mujoco.MjData, hand: int = -1) -> np.ndarray:
        return data.site(self.layout.tcp_sites[hand]).xpos.copy()

    def place_target(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray | None:
        """Where the grasped object must be put down (m, world frame), on pick-and-place tasks: what a
        release is measured against (sim/lockstep.py's grasp report). None: no such place."""
        return None


class Reach(Task):
    name = "reach"
    instructions = (
        "reach the red ball",
        "move your hand to the red sphere",
        "touch the red target",
        "put the gripper on the red dot",
    )
    embodiments = ALL
    max_duration = 3.0
    tolerance = 0.03  # m

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_marker(spec, "target", [0.02, 0, 0], RED, mujoco.mjtGeom.mjGEOM_SPHERE)

    def reset(self, model, data, rng) -> None:
        # The humanoid reaches with its right hand, on its right side.
        offset = (0.0, -0.12) if self.layout.two_handed else (0.0, 0.0)
        target = np.array([*self.sample_xy(rng, 1.0, offset), rng.uniform(0.05, 0.15)])
        data.mocap_pos[model.body("target").mocapid[0]] = target
        self.targets = {"target": target}

    def success(self, model, data) -> bool:
        return bool(np.linalg.norm(self.tcp(data) - data.mocap_pos[model.body("target").mocapid[0]]) < self.tolerance)


class Push(Task):
    name = "push"
    instructions = (
        "push the blue block onto the green square",
        "slide the blue cube to the green target",
        "nudge the blue block over to the green mark",
        "push the cube onto the green pad",
    )
    embodiments = ARMS
    max_duration = 6.0
    half = 0.025
    tolerance = 0.04

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_cube(spec, "cube", self.half, BLUE, mass=0.1, friction=0.5)  # slides rather than tumbles
        _add_marker(spec, "goal", [0.045, 0.045, 0.0005], GREEN)

    def reset(self, model, data, rng) -> None:
        cube = self.sample_xy(rng, 0.6)
        angle = rng.uniform(0, 2 * np.pi)
        goal = cube + rng.uniform(0.1, 0.14) * np.array([np.cos(angle), np.sin(angle)])
        goal = np.clip(goal, self.layout.center - self.layout.half - 0.03, self.layout.center + self.layout.half + 0.03)
        # A face of the block looks at the goal: pushed on that face, it slides straight.
        heading = float(np.arctan2(*(goal - cube)[::-1]))
        _set_free(model, data, "cube_joint", np.array([*cube, self.half]), yaw=heading)
        data.mocap_pos[model.body("goal").mocapid[0]] = [*goal, 0.0005]
        self.targets = {"cube": np.array([*cube, self.half]), "goal": np.array([*goal, self.half])}

    def success(self, model, data) -> bool:
        goal = data.mocap_pos[model.body("goal").mocapid[0]]
        return bool(np.linalg.norm(data.body("cube").xpos[:2] - goal[:2]) < self.tolerance)


class PickPlace(Task):
    name = "pick_place"
    grasped = "cube"
    instructions = (
        "pick up the red block and put it on the green square",
        "place the red cube on the green pad",
        "move the red block onto the green target",
        "grab the red cube and set it down on the green square",
    )
    embodiments = ARMS
    max_duration = 7.0
    half = 0.02
    tolerance = 0.03

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_cube(spec, "cube", self.half, RED)
        _add_marker(spec, "goal", [0.04, 0.04, 0.0005], GREEN)

    def reset(self, model, data, rng) -> None:
        while True:
            cube, goal = self.sample_xy(rng), self.sample_xy(rng)
            if np.linalg.norm(cube - goal) > 0.12:
                break
        _set_free(model, data, "cube_joint", np.array([*cube, self.half]), yaw=rng.uniform(-0.4, 0.4))
        data.mocap_pos[model.body("goal").mocapid[0]] = [*goal, 0.0005]
        self.targets = {"cube": np.array([*cube, self.half]), "goal": np.array([*goal, self.half])}

    def place_target(self, model, data) -> np.ndarray:
        return data.mocap_pos[model.body("goal").mocapid[0]].copy()

    def success(self, model, data) -> bool:
        cube = data.body("cube").xpos
        goal = data.mocap_pos[model.body("goal").mocapid[0]]
        resting = cube[2] < self.half + 0.01
        released = np.linalg.norm(self.tcp(data) - cube) > 0.04
        return bool(np.linalg.norm(cube[:2] - goal[:2]) < self.tolerance and resting and released)


class Stack(Task):
    name = "stack"
    grasped = "top"
    instructions = (
        "stack the red block on the blue block",
        "put the red cube on top of the blue cube",
        "place the red block onto the blue one",
        "build a tower: red cube on the blue cube",
    )
    embodiments = ARMS
    max_duration = 7.0
    top_half = 0.02
    bottom_half = 0.025

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_cube(spec, "top", self.top_half, RED)
        _add_cube(spec, "bottom", self.bottom_half, BLUE, mass=0.2)

    def reset(self, model, data, rng) -> None:
        while True:
            top, bottom = self.sample_xy(rng), self.sample_xy(rng)
            if np.linalg.norm(top - bottom) > 0.12:
                break
        _set_free(model, data, "top_joint", np.array([*top, self.top_half]), yaw=rng.uniform(-0.4, 0.4))
        _set_free(model, data, "bottom_joint", np.array([*bottom, self.bottom_half]), yaw=rng.uniform(-0.4, 0.4))
        self.targets = {"top": np.array([*top, self.top_half]), "bottom": np.array([*bottom, self.bottom_half])}

    def place_target(self, model, data) -> np.ndarray:
        return data.body("bottom").xpos.copy()

    def success(self, model, data) -> bool:
        top, bottom = data.body("top").xpos, data.body("bottom").xpos
        height = top[2] - bottom[2]
        stacked = np.linalg.norm(top[:2] - bottom[:2]) < 0.02 and abs(height - self.top_half - self.bottom_half) < 0.01
        released = np.linalg.norm(self.tcp(data) - top) > 0.04
        return bool(stacked and bottom[2] < self.bottom_half + 0.005 and released)


class OpenDrawer(Task):
    name = "open_drawer"
    instructions = (
        "open the drawer",
        "pull the drawer open",
        "slide the drawer out by its handle",
        "pull out the drawer",
    )
    embodiments = ARMS
    max_duration = 6.0
    opening = 0.1  # m the drawer must be pulled out
    handle_gap = 0.06  # m from drawer front to the handle bar
    handle_z = 0.07

    def build(self, spec: mujoco.MjSpec) -> None:
        cabinet = spec.worldbody.add_body(name="cabinet", pos=[0.72, 0.0, 0.07])
        cabinet.add_geom(name="cabinet", type=BOX, size=[0.12, 0.16, 0.07], rgba=[0.8, 0.8, 0.78, 1.0])
        drawer = cabinet.add_body(name="drawer", pos=[-0.13, 0.0, 0.0])
        drawer.add_joint(
            name="drawer_joint", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1, 0, 0], range=[0.0, 0.2], damping=5.0
        )
        drawer.add_geom(name="drawer_front", type=BOX, size=[0.01, 0.14, 0.045], rgba=[0.55, 0.6, 0.7, 1.0], mass=0.5)
        drawer.add_geom(  # the tray, seen when the drawer is out; visual only (the cabinet is solid)
            type=BOX, size=[0.1, 0.13, 0.035], pos=[0.11, 0, -0.005], rgba=[0.5, 0.55, 0.62, 1.0],
            contype=0, conaffinity=0, mass=0.3,
        )  # fmt: skip
        dz = self.handle_z - 0.07
        for y in (-0.05, 0.05):
            drawer.add_geom(type=BOX, size=[self.handle_gap / 2, 0.008, 0.008], pos=[-self.handle_gap / 2, y, dz],
                            rgba=[0.2, 0.2, 0.2, 1.0], mass=0.01)  # fmt: skip
        drawer.add_geom(
            name="handle", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[0.008, 0.06, 0],
            pos=[-self.handle_gap - 0.008, 0, dz], quat=[0.7071068, 0.7071068, 0, 0], rgba=[0.2, 0.2, 0.2, 1.0],
            mass=0.02,
        )  # fmt: skip
        spec.add_exclude(bodyname1="cabinet", bodyname2="drawer")

    def reset(self, model, data, rng) -> None:
        x = self.layout.center[0] + 0.22 + rng.uniform(-0.03, 0.03)
        y = self.layout.center[1] + rng.uniform(-0.12, 0.12)
        model.body("cabinet").pos[:2] = [x, y]
        data.qpos[model.joint("drawer_joint").qposadr[0]] = 0.0
        front = x - 0.13 - 0.01
        self.targets = {
            "handle": np.array([front - self.handle_gap - 0.008, y, self.handle_z]),
            "front": np.array([front, y, self.handle_z]),
        }

    def success(self, model, data) -> bool:
        return bool(data.qpos[model.joint("drawer_joint").qposadr[0]] > self.opening)


class PressButton(Task):
    name = "press_button"
    instructions = (
        "press the yellow button",
        "push the yellow button down",
        "hit the yellow button",
        "press down on the button",
    )
    embodiments = ALL
    max_duration = 4.0
    depth = 0.008  # m the cap must go down

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_button(spec, "button", YELLOW)

    def reset(self, model, data, rng) -> None:
        offset = (0.0, -0.12) if self.layout.two_handed else (0.0, 0.0)
        xy = self.sample_xy(rng, 1.0, offset)
        model.body("button_base").pos[:2] = xy
        data.qpos[model.joint("button_joint").qposadr[0]] = 0.0
        self.pressed = False
        self.targets = {"button": np.array([*xy, 0.05])}  # top of the cap

    def update(self, model, data) -> None:
        self.pressed |= bool(data.qpos[model.joint("button_joint").qposadr[0]] < -self.depth)

    def success(self, model, data) -> bool:
        return self.pressed


class PressTwoButtons(Task):
    name = "press_buttons"
    instructions = (
        "press both buttons at the same time",
        "use both hands to push the two buttons together",
        "press the left and right buttons simultaneously",
        "push down both buttons at once",
    )
    embodiments = ("g1",)
    max_duration = 4.0
    depth = 0.008

    def build(self, spec: mujoco.MjSpec) -> None:
        _add_button(spec, "left_button", BLUE)
        _add_button(spec, "right_button", YELLOW)

    def reset(self, model, data, rng) -> None:
        self.targets = {}
        for side, sign in (("left", 1.0), ("right", -1.0)):
            xy = self.sample_xy(rng, 1.0, (0.0, sign * 0.15))
            model.body(f"{side}_button_base").pos[:2] = xy
            data.qpos[model.joint(f"{side}_button_joint").qposadr[0]] = 0.0
            self.targets[f"{side}_button"] = np.array([*xy, 0.05])
        self.pressed = False

    def update(self, model, data) -> None:
        both = all(data.qpos[model.joint(f"{s}_button_joint").qposadr[0]] < -self.depth for s in ("left", "right"))
        self.pressed |= bool(both)

    def success(self, model, data) -> bool:
        return self.pressed


TASKS: dict[str, type[Task]] = {
    t.name: t for t in (Reach, Push, PickPlace, Stack, OpenDrawer, PressButton, PressTwoButtons)
}


def available_tasks(embodiment: str | None = None) -> list[str]:
    """Task names, optionally only those the given embodiment can do."""
    return [n for n, t in TASKS.items() if embodiment is None or embodiment in t.embodiments]


def task_class(name: str, embodiment: str) -> type[Task]:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available tasks are {available_tasks()}")
    cls = TASKS[name]
    if embodiment not in cls.embodiments:
        raise ConfigError(
            f"task {name!r} is not defined for embodiment {embodiment!r}; "
            f"{embodiment} can do {available_tasks(embodiment)}"
        )
    return cls
