"""Where a grasp fails: runs the expert and a checkpoint on a grasping task (pick_place or stack) on
the same seeds and breaks each episode into phases, from the simulator's ground truth:

- approach: the smallest horizontal distance of the tool centre point to the object, and the height
  of the fingertips above the object's top when the tool is within 2 cm horizontally;
- grasp: when the gripper is first commanded closed (target below half open), how far the tool was
  from the object then, and whether the object ended up between the fingers (lifted >= 2 cm);
- place: when the gripper first opens again after the lift, where the object was against the place
  target (the goal pad, or the bottom cube for stack, where it is then), where the hand was, how far
  off the hand's centre the object sat between the fingers (a grasp's offset carries into the place),
  how far the target had been pushed from where it started (and when, and where the carried object
  was then), and whether the task's own success check passed;
- carry: how far the object starts from the target, and the release's miss along the carry (short of
  the target, or past it) and across it; the summary splits the successes at the median carry;
- perception or action: during the carry, where the checkpoint's goal head (the auxiliary readout
  trained to predict the state at the next grasp or release) puts the release, against the target.

Prints JSON per episode and a summary per controller, so the phase at which the policy departs from
the expert is a number, not a guess.

    .venv/bin/python benchmarks/grasp_diagnosis.py --checkpoint CKPT --task pick_place --episodes 10
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np
import torch

os.environ.setdefault("MUJOCO_GL", "egl")

from gen0_policy.sim.env import make_env
from gen0_policy.sim.experts import make_expert
from gen0_policy.sim.policies import make_controller
from gen0_policy.sim.tasks import TASKS


def episode(env, controller, seed: int) -> dict[str, Any]:
    env.reset(seed)
    controller.reset(env)
    body = env.task.grasped
    place = PLACE_TARGETS[env.task.name]
    half = float(env.model.geom(env.model.body(body).geomadr[0]).size[0])
    lower, upper = env.embodiment.lower[-1], env.embodiment.upper[-1]
    start_z = float(env.data.body(body).xpos[2])
    tip = float(env.embodiment.sim.get("tip_offset", 0.02))  # m from the tcp site down to the fingertips
    log: dict[str, list] = {"t": [], "tcp": [], "obj": [], "place": [], "grip_cmd": [], "grip": [], "goal": []}
    reader = GoalReader(controller, env)
    success_t = None
    n_max = round(env.task.max_duration / env.control_dt)
    needs = getattr(controller, "needs_images", False)
    for _ in range(n_max):
        wants = getattr(controller, "wants_images", None)
        looks = wants(env.time) if callable(wants) else needs
        obs = env.observation() if looks else {"time": env.time, "joint_positions": env.joint_positions()}
        obs.setdefault("joint_velocities", env.joint_velocities())
        log["goal"].append(reader(obs) if looks else None)
        q = np.asarray(controller.act(obs), np.float64)
        env.set_targets(q)
        env.step()
        log["t"].append(env.time)
        log["tcp"].append(env.task.tcp(env.data))
        log["obj"].append(env.data.body(body).xpos.copy())
        log["place"].append(env.data.body(place).xpos.copy())
        log["grip_cmd"].append((q[-1] - lower) / (upper - lower))  # 0 closed .. 1 open
        log["grip"].append((env.joint_positions()[-1] - lower) / (upper - lower))
        if env.success():
            success_t = env.time
            break
    t, tcp, obj = np.array(log["t"]), np.array(log["tcp"]), np.array(log["obj"])
    cmd = np.array(log["grip_cmd"])
    xy = np.linalg.norm(tcp[:, :2] - obj[:, :2], axis=1)
    above = tcp[:, 2] - tip - (obj[:, 2] + half)  # fingertips above the object's top face, m
    near = xy < 0.02
    closed = np.flatnonzero(cmd < 0.5)
    first_close = int(closed[0]) if len(closed) else None
    lift = float(obj[:, 2].max() - start_z)
    release = _release_index(cmd, obj[:, 2] - start_z, first_close)
    place_xyz = np.array(log["place"])
    goal_xy = place_xyz[:, :2]
    moved = _moved(goal_xy, 0.01)
    pushed = int(moved[0]) if len(moved) else None  # the step the target first moved 1 cm
    carried = range(first_close or 0, len(t) if release is None else release)
    goal_far, goal_near = _goal_errors(log["goal"], tcp, goal_xy, carried, obj[:, 2] - start_z)
    return {
        "seed": seed,
        "success": success_t is not None,
        "seconds": round(float(t[-1]), 2),
        "min_xy_to_object_m": round(float(xy.min()), 4),
        "min_tip_height_over_object_top_when_near_m": round(float(above[near].min()), 4) if near.any() else None,
        "close_time_s": round(float(t[first_close]), 2) if first_close is not None else None,
        "xy_at_close_m": round(float(xy[first_close]), 4) if first_close is not None else None,
        "tip_height_over_top_at_close_m": round(float(above[first_close]), 4) if first_close is not None else None,
        "reopened_before_lift": bool(first_close is not None and np.any(cmd[first_close:] > 0.8) and lift < 0.02),
        "object_lift_m": round(lift, 4),
        "lifted": lift >= 0.02,
        "object_xy_m": [round(float(v), 4) for v in obj[0, :2]],
        "tcp_xy_at_close_m": [round(float(v), 4) for v in tcp[first_close, :2]] if first_close is not None else None,
        "release_time_s": _r(t[release]) if release is not None else None,
        "object_to_target_xy_at_release_m": _dist(obj[release, :2], goal_xy[release]) if release is not None else None,
        "hand_to_target_xy_at_release_m": _dist(tcp[release, :2], goal_xy[release]) if release is not None else None,
        "object_off_hand_xy_at_release_m": _dist(obj[release, :2], tcp[release, :2]) if release is not None else None,
        "object_to_target_xy_at_end_m": _dist(obj[-1, :2], goal_xy[-1]),
        "target_xy_m": [_r(v) for v in goal_xy[0]],
        # A place can fail before it starts: the bottom cube knocked away while the hand was on its way.
        "target_moved_before_release_m": _dist(goal_xy[0], goal_xy[release]) if release is not None else None,
        "target_moved_1cm_at_s": _r(t[pushed]) if pushed is not None else None,
        # Where the carried object was then, against the target's centre: below the target's top and
        # beside it is a side-swipe (the path cut the corner down onto the target).
        "object_over_target_z_when_moved_m": _r(obj[pushed, 2] - place_xyz[pushed, 2]) if pushed is not None else None,
        "object_to_target_xy_when_moved_m": _dist(obj[pushed, :2], goal_xy[pushed]) if pushed is not None else None,
        "tcp_xy_at_release_m": [_r(v) for v in tcp[release, :2]] if release is not None else None,
        # The carry, in the frame of the move: how far the object had to go, and how far the release
        # fell short of the target along that line (positive: short) and beside it.
        "pick_to_place_xy_m": _dist(obj[0, :2], goal_xy[0]),
        **_along_carry(obj[0, :2], goal_xy[0], tcp[release, :2] if release is not None else None),
        # Perception or action? Where the network's goal head (a linear readout of its context, trained
        # to predict the state at the next grasp or release) puts the release, against the target, in
        # the carry's inferences with the hand over 5 cm from the target and within 5 cm (medians).
        "goal_head_to_target_far_m": goal_far,
        "goal_head_to_target_near_m": goal_near,
    }


class GoalReader:
    """The hand position a checkpoint's goal head predicts for an observation (None for the expert)."""

    def __init__(self, controller: Any, env: Any) -> None:
        policy = getattr(controller, "policy", None)
        self.policy = policy if policy is not None and policy.model.goal_head is not None else None
        if self.policy is not None:
            self.env, self.forward = env, make_expert(env).iks[-1].forward
            self.stats = policy.processor.stats[policy.processor.embodiment(env.embodiment.name).name]

    def __call__(self, obs: dict[str, Any]) -> np.ndarray | None:
        if self.policy is None:
            return None
        p, env = self.policy, self.env
        view = {"embodiment": env.embodiment.name, "instruction": env.instruction}
        view |= {"joint_positions": obs["joint_positions"], "images": obs["images"]}
        batch = p.processor.observation(view, p.language.encode([env.instruction])[0])
        with torch.inference_mode():
            context, _ = p.model.encode({k: v.to(p.device) for k, v in batch.items()})
            goal = p.model.goal_head(context.mean(dim=1)).float().cpu().numpy()[0, : self.stats.dof]
        position, _ = self.forward((goal * self.stats.state_std + self.stats.state_mean).astype(np.float64))
        return position


def _goal_errors(
    goals: list[np.ndarray | None], tcp: np.ndarray, target_xy: np.ndarray, carried: range, rise_m: np.ndarray
) -> tuple[float | None, float | None]:
    """Median distance of the goal head's hand position from the target over the carry's inferences
    (object lifted >= 2 cm), with the hand more than 5 cm from the target, and within 5 cm."""
    far, near = [], []
    for i in carried:
        if goals[i] is None or rise_m[i] < 0.02:
            continue
        error = float(np.linalg.norm(goals[i][:2] - target_xy[i]))
        (far if np.linalg.norm(tcp[i, :2] - target_xy[i]) > 0.05 else near).append(error)
    return (_r(np.median(far)) if far else None), (_r(np.median(near)) if near else None)


def _along_carry(start: np.ndarray, target: np.ndarray, released: np.ndarray | None) -> dict[str, float | None]:
    """The release's miss split along the carry (start -> target; positive: short of it) and across it
    (positive: left of the line, looking along the carry)."""
    if released is None:
        return {"release_short_along_carry_m": None, "release_across_carry_m": None}
    along = (target - start) / np.linalg.norm(target - start)
    miss = released - target
    return {
        "release_short_along_carry_m": _r(-miss @ along),
        "release_across_carry_m": _r(miss @ np.array([-along[1], along[0]])),
    }


def _moved(xy: np.ndarray, metres: float) -> np.ndarray:
    """Indices of the steps at which a body is more than ``metres`` from where it started."""
    return np.flatnonzero(np.linalg.norm(xy - xy[0], axis=1) > metres)


# The body a task puts the grasped object on.
PLACE_TARGETS = {"pick_place": "goal", "stack": "bottom"}


def _r(value: float) -> float:
    return round(float(value), 4)


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return _r(np.linalg.norm(a - b))


def _release_index(cmd: np.ndarray, rise_m: np.ndarray, first_close: int | None) -> int | None:
    """The first step after the object rose 2 cm at which the gripper is commanded open again."""
    if first_close is None:
        return None
    lifted = np.flatnonzero(rise_m[first_close:] >= 0.02)
    if not len(lifted):
        return None
    start = first_close + int(lifted[0])
    opened = np.flatnonzero(cmd[start:] > 0.5)
    return start + int(opened[0]) if len(opened) else None


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(episodes)

    def mean(key: str) -> float | None:
        values = [e[key] for e in episodes if e[key] is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {
        "episodes": n,
        "success": sum(e["success"] for e in episodes),
        "reached_within_2cm": sum(e["min_xy_to_object_m"] < 0.02 for e in episodes),
        "closed_gripper": sum(e["close_time_s"] is not None for e in episodes),
        "lifted": sum(e["lifted"] for e in episodes),
        "mean_min_xy_to_object_m": mean("min_xy_to_object_m"),
        "mean_xy_at_close_m": mean("xy_at_close_m"),
        "mean_tip_height_over_top_at_close_m": mean("tip_height_over_top_at_close_m"),
        "mean_close_time_s": mean("close_time_s"),
        "released_after_lift": sum(e["release_time_s"] is not None for e in episodes),
        "mean_object_to_target_xy_at_release_m": mean("object_to_target_xy_at_release_m"),
        "mean_hand_to_target_xy_at_release_m": mean("hand_to_target_xy_at_release_m"),
        "mean_object_off_hand_xy_at_release_m": mean("object_off_hand_xy_at_release_m"),
        "target_moved_over_1cm_before_release": sum((e["target_moved_before_release_m"] or 0) > 0.01 for e in episodes),
        "mean_release_short_along_carry_m": mean("release_short_along_carry_m"),
        "mean_goal_head_to_target_far_m": mean("goal_head_to_target_far_m"),
        "mean_goal_head_to_target_near_m": mean("goal_head_to_target_near_m"),
        **by_carry_length(episodes),
        "tracking_at_close": tracking(episodes),
        "tracking_at_release": tracking(episodes, "target_xy_m", "tcp_xy_at_release_m"),
    }


def by_carry_length(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Successes in the shorter and the longer half of the carries (split at the median start-to-target
    distance): do the failures depend on how close the object starts to its target?"""
    carry = np.array([e["pick_to_place_xy_m"] for e in episodes])
    success = np.array([e["success"] for e in episodes])
    median = float(np.median(carry))
    short = carry <= median
    return {
        "median_pick_to_place_xy_m": _r(median),
        "success_shorter_half": f"{int(success[short].sum())}/{int(short.sum())}",
        "success_longer_half": f"{int(success[~short].sum())}/{int((~short).sum())}",
    }


def tracking(
    episodes: list[dict[str, Any]], seen: str = "object_xy_m", hand: str = "tcp_xy_at_close_m"
) -> dict[str, Any] | None:
    """Does the hand go where it should? Per axis, the least-squares slope of the tool's position (at
    the grasp, or at the release) on the position of what it should reach (the object, or the place
    target; 1: follows it, 0: ignores it) and the residual."""
    pairs = [(e[seen], e[hand]) for e in episodes if e[hand] is not None]
    if len(pairs) < 3:
        return None
    obj, tcp = (np.array(v) for v in zip(*pairs, strict=True))
    out: dict[str, Any] = {}
    for axis, name in enumerate("xy"):
        slope, intercept = np.polyfit(obj[:, axis], tcp[:, axis], 1)
        residual = tcp[:, axis] - (slope * obj[:, axis] + intercept)
        out[f"slope_{name}"] = round(float(slope), 3)
        out[f"residual_{name}_m"] = round(float(np.sqrt(np.mean(residual**2))), 4)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--embodiment", default="panda")
    p.add_argument("--task", default="pick_place", choices=sorted(n for n, t in TASKS.items() if t.grasped))
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=100, help="first seed (100+: held out from the training data)")
    p.add_argument("--camera-size", default="", help="WxH of the simulated cameras (default: the robot's own)")
    args = p.parse_args()
    size = tuple(int(v) for v in args.camera_size.split("x")) if args.camera_size else None
    result: dict[str, Any] = {"benchmark": "grasp_diagnosis", "settings": vars(args)}
    with make_env(args.embodiment, args.task, seed=args.seed, camera_size=size) as env:
        for name in ("expert", args.checkpoint):
            controller = make_controller(name)
            eps = [episode(env, controller, args.seed + i) for i in range(args.episodes)]
            result[name] = {"summary": summarize(eps), "episodes": eps}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
