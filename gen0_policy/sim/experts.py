"""Scripted experts: stand-ins for teleoperators that produce the demonstrations a policy learns from.

An expert plans a few Cartesian waypoints per hand from the task's object poses (what a person sees),
then, every control step, interpolates the hand pose for the observation's time and solves IK from
its previous solution. It commands only joint position targets (``act`` returns them), exactly the
interface a learned policy has, and through the same safety filter the runtime puts in front of a
policy: the demonstrations move within the robot's velocity and acceleration limits, so a policy
that imitates them asks for nothing the runtime would have to cut (an unlimited wrist turned at more
than 5 rad/s where a Panda's limit is 2.61, and the grasps learned from it missed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.runtime.safety import SafeState, SafetyFilter, SafetyLimits
from gen0_policy.sim.env import SimEnv
from gen0_policy.sim.ik import DifferentialIK, IKConfig

SPEED = 0.3  # m/s, free motion of a hand
SLOW = 0.12  # m/s, pushing and pulling
MIN_SEGMENT = 0.25  # s
# With a grasp gate (``grasp_gate_m`` > 0, off by default) a grasp or a release waits above its object
# until the measured hand is that close to where the plan puts it (at most GATE_MAX_S), then goes down
# and closes (or opens), as a teleoperator closes the gripper when the fingers are around the object
# rather than at a time. Off, the expert grasps on its schedule: the shipped checkpoint's data, and
# (measured, README "Why grasping failed") the better teacher for a policy of today's precision.
GATE_MAX_S = 1.5
GATE_HEIGHT_M = 0.05  # the gate is this far above the grasp (release) point: fingertips clear of the object
# With a funnel (``funnel_slope`` > 0, off by default) the hand going down to a grasp or a release is
# kept at least slope x (its measured horizontal distance from the point) above it (at most at the
# hover height), and the perturbation of demonstrations with recoveries calms meanwhile: recorded
# under perturbation, the demonstrations show a hand that is off the object finishing the correction
# before it comes down, where a hand 1-2 cm off the bottom cube knocks a stack over. Unlike the gate
# the plan never waits: the gripper closes and opens on the expert's schedule. Measured (README "Why
# grasping failed"): every perturbed demonstration succeeds, but a policy trained on them did no better.


class Controller(Protocol):
    """What ``gen0 sim rollout`` drives: an expert or a trained policy behind the same two calls."""

    def reset(self, env: SimEnv) -> None: ...

    def act(self, observation: dict[str, Any]) -> np.ndarray: ...


@dataclass
class Gate:
    """Hold the plan at ``t`` (s of plan time) until the measured ``hand`` is within the tolerance of
    ``position``; from ``t`` to ``calm_until`` the expert is ``settling`` (no new perturbation)."""

    t: float
    hand: int
    position: np.ndarray
    calm_until: float = 0.0
    passed: bool = False
    waited_s: float = 0.0


@dataclass
class Funnel:
    """From ``t_start`` to ``t_end`` (s of plan time) hand ``hand`` goes down to ``point``."""

    t_start: float
    t_end: float
    hand: int
    point: np.ndarray


@dataclass
class Segment:
    """Move a hand to ``position`` with the gripper at ``grip`` (0 open, 1 closed), ending at ``t_end``."""

    position: np.ndarray
    grip: float
    t_end: float
    start: np.ndarray = field(default_factory=lambda: np.zeros(3))
    t_start: float = 0.0
    follow: Callable[[], np.ndarray] | None = None  # live target (closed loop), rate-limited to ``speed``
    speed: float = SPEED
    relative: np.ndarray | None = None  # move by this offset from wherever the hand was commanded


class HandPlan:
    """A timed sequence of segments for one hand; ``at(t)`` gives the pose and gripper at time t."""

    def __init__(self, start: np.ndarray, grip: float = 0.0) -> None:
        self.segments: list[Segment] = []
        self.position = np.asarray(start, float).copy()
        self.grip = grip
        self.t = 0.0
        self.commanded = self.position.copy()  # last output of ``at``
        self._current: Segment | None = None

    def move(self, position: np.ndarray, grip: float | None = None, speed: float = SPEED) -> HandPlan:
        position = np.asarray(position, float)
        duration = max(MIN_SEGMENT, float(np.linalg.norm(position - self.position)) / speed)
        return self._add(position, self.grip if grip is None else grip, duration)

    def wait(self, duration: float, grip: float | None = None) -> HandPlan:
        return self._add(self.position, self.grip if grip is None else grip, duration)

    def follow(self, target: Callable[[], np.ndarray], duration: float, speed: float = SLOW) -> HandPlan:
        """Track a target computed from the live scene (e.g. behind a pushed cube) for ``duration`` s."""
        self._add(self.position, self.grip, duration)
        self.segments[-1].follow, self.segments[-1].speed = target, speed
        return self

    def shift(self, offset: np.ndarray, duration: float = 0.5) -> HandPlan:
        """Move by ``offset`` from wherever the previous (closed-loop) segment left the hand."""
        self._add(self.position + offset, self.grip, duration)
        self.segments[-1].relative = np.asarray(offset, float)
        return self

    def _add(self, position: np.ndarray, grip: float, duration: float) -> HandPlan:
        seg = Segment(position.copy(), grip, self.t + duration, start=self.position.copy(), t_start=self.t)
        self.segments.append(seg)
        self.position, self.grip, self.t = position.copy(), grip, self.t + duration
        return self

    @property
    def duration(self) -> float:
        return self.t

    def at(self, t: float, dt: float = 0.01) -> tuple[np.ndarray, float]:
        """Hand position and gripper command at time ``t``; call once per control step (``dt`` s)."""
        seg = next((s for s in self.segments if t < s.t_end), None)
        if seg is None:
            last = self.segments[-1] if self.segments else None
            if last is not None and (last.follow is not None or last.relative is not None):
                return self.commanded.copy(), last.grip
            return self.position.copy(), self.grip
        if seg is not self._current:  # entering a segment
            self._current = seg
            if seg.relative is not None:
                seg.start, seg.position = self.commanded.copy(), self.commanded + seg.relative
        if seg.follow is not None:
            step = seg.follow() - self.commanded
            limit = seg.speed * dt
            norm = float(np.linalg.norm(step))
            self.commanded = self.commanded + (step if norm <= limit else step * limit / norm)
            return self.commanded.copy(), seg.grip
        s = (t - seg.t_start) / (seg.t_end - seg.t_start)
        s = s * s * (3 - 2 * s)  # smoothstep: zero velocity at both ends
        self.commanded = seg.start + s * (seg.position - seg.start)
        return self.commanded.copy(), seg.grip


def _wrap_quarter(yaw: float) -> float:
    """A cube looks the same every 90 deg: the grasp yaw closest to zero."""
    return (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4


def _body_yaw(env: SimEnv, body: str) -> float:
    mat = env.data.body(body).xmat.reshape(3, 3)
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


class ScriptedExpert:
    """Waypoint expert for any embodiment and task in this package."""

    def __init__(self, env: SimEnv, grasp_gate_m: float = 0.0, funnel_slope: float = 0.0) -> None:
        if not grasp_gate_m >= 0:
            raise ConfigError(f"grasp gate must be >= 0 m, got {grasp_gate_m}")
        if not funnel_slope >= 0:
            raise ConfigError(f"funnel slope must be >= 0, got {funnel_slope}")
        self.env = env
        self.grasp_gate_m = float(grasp_gate_m)
        self.funnel_slope = float(funnel_slope)
        emb = env.embodiment
        sim = emb.sim
        self.tip_offset = float(sim.get("tip_offset", 0.02))
        grip = sim.get("gripper")  # none (G1): the hands keep their home pose
        self.has_gripper = grip is not None
        self.grip_open = float(grip["open"]) if grip else 0.0
        self.grip_closed = float(grip["closed"]) if grip else 0.0
        self.grip_yaw = float(grip.get("yaw_offset", 0.0)) if grip else 0.0
        self.hands = list(env.layout.tcp_sites)
        chains = sim.get("ik_chains", {})
        config = IKConfig(**sim.get("ik", {}))
        self.safety = SafetyFilter(SafetyLimits.from_embodiment(emb))
        self.grip_s = 0.4  # s to hold still while the gripper closes or opens: its stroke at its limits
        if self.has_gripper:
            i = int(np.flatnonzero(emb.gripper_mask)[0])
            v, a = emb.velocity_limits[i], emb.acceleration_limits[i]
            stroke = abs(self.grip_closed - self.grip_open)
            self.grip_s = max(self.grip_s, stroke / v + v / a + 0.2)  # + the fingers' settling
        self.iks = []
        for site in self.hands:
            joints = chains.get(site, [n for n, g in zip(emb.joint_names, emb.gripper_mask, strict=True) if not g])
            self.iks.append(DifferentialIK(env.model, emb, site, joints, config))
        self.reset(env)

    # --- planning ------------------------------------------------------------------------------
    def reset(self, env: SimEnv | None = None) -> None:
        """Plan the episode the environment was just reset into."""
        if env is not None and env is not self.env:
            raise ConfigError("an expert plans for the environment it was made with; call make_expert(env)")
        env = self.env
        self.commanded: SafeState = self.safety.start(env.embodiment.home)  # also the IK's warm start
        self.rotations = []
        starts = []
        for ik in self.iks:
            pos, rot = ik.forward(self.commanded.position)
            starts.append(pos)
            self.rotations.append(rot)
        self.plans = [HandPlan(p) for p in starts]
        self.gates: list[Gate] = []
        self.funnels: list[Funnel] = []
        self.held_s = 0.0  # s the plan has waited at gates: plan time = episode time - held_s
        self.settling = False  # at a gate, or going down from it (demonstrations with recoveries calm down)
        self.yaw = [self.grip_yaw for _ in self.hands]
        planner = getattr(self, f"_plan_{env.task_name}", None)
        if planner is None:
            raise ConfigError(f"no scripted expert for task {env.task_name!r}")
        planner(env.task.targets)

    @property
    def duration(self) -> float:
        return max(p.duration for p in self.plans)

    def _grip_at(self, point: np.ndarray, grip: float) -> None:
        """Go down to ``point`` and set the last hand's gripper; with a grasp gate, first wait above it
        until the measured hand is there."""
        plan, gate = self.plans[-1], None
        if self.grasp_gate_m:
            plan.move(point + np.array([0.0, 0.0, GATE_HEIGHT_M]))
            gate = Gate(plan.t, len(self.plans) - 1, plan.position.copy())
        t_start = plan.t
        plan.move(point, speed=0.2).wait(self.grip_s, grip=grip)
        if self.funnel_slope:
            self.funnels.append(Funnel(t_start, plan.t, len(self.plans) - 1, np.asarray(point, float).copy()))
        if gate is not None:
            gate.calm_until = plan.t
            self.gates.append(gate)

    def _hover(self, xy: np.ndarray) -> np.ndarray:
        return np.array([xy[0], xy[1], self.env.layout.hover])

    def _plan_reach(self, t: dict[str, np.ndarray]) -> None:
        self.plans[-1].move(t["target"]).wait(0.3)

    def _plan_press_button(self, t: dict[str, np.ndarray]) -> None:
        self._press(self.plans[-1], t["button"])

    def _plan_press_buttons(self, t: dict[str, np.ndarray]) -> None:
        for plan, key in zip(self.plans, ("left_button", "right_button"), strict=True):
            self._press(plan, t[key])

    def _press(self, plan: HandPlan, button: np.ndarray) -> None:
        press = button + np.array([0.0, 0.0, self.tip_offset - 0.02])  # past the cap's 15 mm travel
        plan.move(self._hover(button), grip=1.0).move(button + np.array([0.0, 0.0, self.tip_offset + 0.03]))
        plan.move(press, speed=SLOW).wait(0.25).move(self._hover(button))

    def _plan_push(self, t: dict[str, np.ndarray]) -> None:
        cube, goal = t["cube"], t["goal"]
        direction = (goal - cube)[:2] / np.linalg.norm((goal - cube)[:2])
        half = self.env.task.half
        z = self.tip_offset + 0.02  # fingertips below the cube's middle, well above the table
        start = np.array([*(cube[:2] - direction * (half + 0.05)), z])
        data = self.env.data

        def behind_cube() -> np.ndarray:
            """Closed loop, like a person watching: stay on the cube-goal line, lean into the cube."""
            now = data.body("cube").xpos[:2]
            to_goal = goal[:2] - now
            dist = float(np.linalg.norm(to_goal))
            if dist < 0.01:  # there: back off a little and stop pushing
                return np.array([*(now - direction * (half + 0.03)), z])
            u = to_goal / dist
            return np.array([*(now - u * (half + 0.015) + u * min(0.02, dist)), z])

        # Turn the closed fingers' flat side square to the push, so the block is pushed face on.
        heading = float(np.arctan2(direction[1], direction[0]))
        self.yaw[-1] = self.grip_yaw + (heading + np.pi / 2) % np.pi - np.pi / 2
        plan = self.plans[-1]
        plan.move(self._hover(start), grip=1.0).move(start)
        plan.follow(behind_cube, duration=float(np.linalg.norm(goal - cube)) / SLOW + 1.0)
        plan.shift(np.array([0.0, 0.0, 0.08]))

    def _pick_and_place(self, obj: str, pick: np.ndarray, place: np.ndarray) -> None:
        self.yaw[-1] = self.grip_yaw + _wrap_quarter(_body_yaw(self.env, obj))
        plan = self.plans[-1]
        plan.move(self._hover(pick), grip=0.0)
        self._grip_at(pick, grip=1.0)
        plan.move(self._hover(pick)).move(self._hover(place))
        self._grip_at(place, grip=0.0)
        plan.move(self._hover(place))

    def _plan_pick_place(self, t: dict[str, np.ndarray]) -> None:
        half = self.env.task.half
        self._pick_and_place("cube", t["cube"], t["goal"] + np.array([0.0, 0.0, half + 0.005 - t["goal"][2]]))

    def _plan_stack(self, t: dict[str, np.ndarray]) -> None:
        task = self.env.task
        place = t["bottom"] + np.array([0.0, 0.0, task.bottom_half + task.top_half + 0.008])
        self._pick_and_place("top", t["top"], place)

    def _plan_open_drawer(self, t: dict[str, np.ndarray]) -> None:
        hook = t["front"] + np.array([-0.025, 0.0, 0.0])  # between the handle bar and the drawer front
        pulled = hook + np.array([-0.15, 0.0, 0.0])
        plan = self.plans[-1]
        plan.move(hook + np.array([0.0, 0.0, 0.12]), grip=1.0).move(hook, speed=0.2)
        plan.move(pulled, speed=SLOW).move(pulled + np.array([0.0, 0.0, 0.1]))

    # --- acting --------------------------------------------------------------------------------
    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """Joint position targets for the observation's time (s since reset); its measured
        ``joint_positions`` say whether a grasp or a release may go ahead (the gates)."""
        t = self._plan_time(observation)
        emb = self.env.embodiment
        q = self.commanded.position.copy()
        for hand, (ik, plan) in enumerate(zip(self.iks, self.plans, strict=True)):
            position, grip = plan.at(t, self.env.control_dt)
            position = self._funnel(hand, t, position, observation)
            rotation = _rot_z(self.yaw[hand]) @ self.rotations[hand]
            q = ik.solve(q, position, rotation, posture=emb.home)
            if self.has_gripper:
                q[self._grip_index(hand)] = self.grip_open + grip * (self.grip_closed - self.grip_open)
        # approach, not step: a target chased at the acceleration limit without braking overshoots
        # and rings (the UR5e's wrist swung +-15 degrees about its goal and the grasps slipped).
        self.commanded = self.safety.approach(self.commanded, q, self.env.control_dt)
        return self.commanded.position.copy()

    def _funnel(self, hand: int, t: float, position: np.ndarray, observation: dict[str, Any]) -> np.ndarray:
        """``position`` raised to the funnel over the point this hand is going down to, if any; inside a
        funnel the expert is ``settling`` (the perturbation adds nothing new)."""
        funnel = next((f for f in self.funnels if f.hand == hand and f.t_start <= t < f.t_end), None)
        if funnel is None:
            return position
        self.settling = True
        measured, _ = self.iks[hand].forward(np.asarray(observation["joint_positions"], float))
        off_m = float(np.linalg.norm(measured[:2] - funnel.point[:2]))
        floor = min(self.env.layout.hover, funnel.point[2] + self.funnel_slope * off_m)
        return np.array([position[0], position[1], max(position[2], floor)])

    def _plan_time(self, observation: dict[str, Any]) -> float:
        """The plan's time for this step (aiming where the hand should be next step), held at a gate
        while the measured hand is off the gate's position."""
        t = float(observation["time"]) + self.env.control_dt - self.held_s
        self.settling = any(g.passed and t <= g.calm_until for g in self.gates)
        for gate in self.gates:  # in plan order
            if gate.passed:
                continue
            if t < gate.t:
                break
            hand, _ = self.iks[gate.hand].forward(np.asarray(observation["joint_positions"], float))
            if float(np.linalg.norm(hand - gate.position)) <= self.grasp_gate_m or gate.waited_s >= GATE_MAX_S:
                gate.passed = True
                continue
            gate.waited_s += t - gate.t
            self.held_s += t - gate.t
            self.settling = True
            return gate.t
        return t

    def _grip_index(self, hand: int) -> np.ndarray:
        return np.flatnonzero(self.env.embodiment.gripper_mask)


def make_expert(env: SimEnv, grasp_gate_m: float = 0.0, funnel_slope: float = 0.0) -> ScriptedExpert:
    """The scripted expert for ``env``'s embodiment and task, planned for its current episode."""
    return ScriptedExpert(env, grasp_gate_m, funnel_slope)
