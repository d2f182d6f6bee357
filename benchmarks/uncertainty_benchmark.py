"""Does the policy know when it does not know? Runs a checkpoint on held-out in-distribution Panda
episodes and on shifted ones the training data never had, records every candidate uncertainty signal
(runtime/uncertainty.py) at each inference and each episode's outcome, and reports how well each
signal predicts failure and flags each shift (AUROC), the threshold that holds in a given fraction of
good episodes (calibrated on half of them, precision/recall measured on the rest), how early it
rises before a failure, and (with --hold) what holding at that threshold changes. Prints one JSON
object; writes it, a PNG of the ROC curves and a calibration file for the policy node.

Episodes run as ``gen0 sim rollout --policy CHECKPOINT`` does (synchronous, 3/4 of each chunk
executed, the deterministic chunk executed; the samples only measure the spread, so outcomes equal
the default rollout's). Conditions:
  in_distribution        the task's own instructions, native 320x240 cameras, seeds >= 100
  unseen_instruction     an instruction of no trained task ("fold the towel", ...)
  wrong_embodiment       the G1's two-handed instructions ("press both buttons at the same time", ...)
  covered_camera         the scene camera black (lens cap)
  occluded_camera        the left half of the scene camera grey (something in front of it)
  recoloured_objects     the task's objects in other colours (red ball -> green, yellow button -> cyan, ...)

docs/results/uncertainty.json, .png and config/uncertainty/multitask_cpu.json were made by (2026-12-04,
the stage-4 checkpoint, 2-core CPU: 21 min for the 540 episodes and the holding pass together):

    MUJOCO_GL=egl .venv/bin/python benchmarks/uncertainty_benchmark.py --episodes 30 --num-samples 8 --hold
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.runtime.uncertainty import (
    NEEDS_SAMPLES,
    SIGNALS,
    Calibration,
    EpisodeTrace,
    auroc,
    calibrate_threshold,
    precision_recall,
    roc_points,
)
from gen0_policy.sim.env import SimEnv, make_env
from gen0_policy.sim.policies import CheckpointController
from gen0_policy.sim.rollout import RolloutConfig, run_episode

UNSEEN = ("fold the towel", "pour the water into the cup", "open the fridge door", "wipe the table clean")
G1_INSTRUCTIONS = (
    "press both buttons at the same time",
    "use both hands to push the two buttons together",
    "press the left and right buttons simultaneously",
    "push down both buttons at once",
)
OBJECT_GEOMS = {"reach": ("target",), "press_button": ("button",), "push": ("cube", "goal")}
CLEAR_SHIFTS = ("covered_camera", "unseen_instruction")  # the aim: AUROC >= 0.8 on these


def covered(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {cam: np.zeros_like(frame) if cam == "scene" else frame for cam, frame in images.items()}


def occluded(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(images)
    if "scene" in out:
        frame = out["scene"].copy()
        frame[:, : frame.shape[1] // 2] = 128
        out["scene"] = frame
    return out


class Shift:
    """What a condition changes: the instruction, the camera images, the scene's colours."""

    def __init__(
        self,
        instructions: tuple[str, ...] = (),
        images: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
        recolour: bool = False,
    ) -> None:
        self.instructions, self.images, self.recolour = instructions, images, recolour

    def prepare(self, env: SimEnv) -> None:
        """Once per world: rotate the objects' RGB (red -> green, yellow -> cyan, blue -> red)."""
        if self.recolour:
            for name in OBJECT_GEOMS.get(env.task_name, ()):
                rgba = env.model.geom(name).rgba
                rgba[:3] = rgba[[2, 0, 1]]


CONDITIONS = {
    "in_distribution": Shift(),
    "unseen_instruction": Shift(instructions=UNSEEN),
    "wrong_embodiment": Shift(instructions=G1_INSTRUCTIONS),
    "covered_camera": Shift(images=covered),
    "occluded_camera": Shift(images=occluded),
    "recoloured_objects": Shift(recolour=True),
}


class Monitored:
    """The checkpoint controller under a shift, optionally holding (as the runtime does) when any signal
    of ``hold={signal: threshold}`` is exceeded: it keeps its last target for one policy step, then thinks
    again. Counts the arm's motion (rad of joint travel), to see what holding saves in failed episodes."""

    def __init__(self, inner: CheckpointController, shift: Shift, hold: dict[str, float] | None = None) -> None:
        self.inner, self.shift, self.hold = inner, shift, hold
        self.needs_images = True

    def reset(self, env: SimEnv) -> None:
        self.inner.reset(env)
        if self.shift.instructions:
            env.instruction = self.shift.instructions[env.seed % len(self.shift.instructions)]
        self.env, self.motion, self.holds, self._last = env, 0.0, 0, None
        self._target: np.ndarray | None = None

    def wants_images(self, now: float) -> bool:
        return self.inner.wants_images(now)

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        q = np.asarray(observation["joint_positions"], np.float64)
        arm = ~self.env.embodiment.gripper_mask
        if self._last is not None:
            self.motion += float(np.abs(q - self._last)[arm].sum())
        self._last = q
        if "images" in observation and self.shift.images is not None:
            observation = {**observation, "images": self.shift.images(observation["images"])}
        inferred = len(self.inner.signals)
        target = self.inner.act(observation)
        if self.hold is not None and len(self.inner.signals) > inferred:
            values = self.inner.signals[-1][1]
            if any(values[signal] > threshold for signal, threshold in self.hold.items()):  # look again a step later
                self.holds += 1
                stay = q if self._target is None else self._target
                self.inner.hold(stay, float(observation["time"]))
                return stay
        self._target = target
        return target


def run_condition(
    controller: CheckpointController,
    task: str,
    condition: str,
    seeds: range,
    hold: dict[str, float] | None,
    log: Callable[[str], None],
) -> list[tuple[EpisodeTrace, dict[str, Any]]]:
    shift = CONDITIONS[condition]
    monitored = Monitored(controller, shift, hold)
    out = []
    with make_env("panda", task, seed=seeds[0]) as env:
        shift.prepare(env)
        for seed in seeds:
            start = time.perf_counter()
            result = run_episode(env, monitored, seed, RolloutConfig(linger=0.0))
            trace = EpisodeTrace(condition, task, seed, result.success, result.seconds)
            for t, values in controller.signals:
                trace.add(t, values)
            extra = {"instruction": result.instruction, "motion_rad": round(monitored.motion, 3)}
            extra["holds"] = monitored.holds
            out.append((trace, extra))
            log(
                f"{condition} {task} seed {seed}: {'ok' if result.success else 'FAIL'} {result.seconds:.2f} s sim, "
                f"{time.perf_counter() - start:.1f} s wall, holds {monitored.holds}"
            )
    return out


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def analyse(traces: list[EpisodeTrace], false_hold_rate: float) -> dict[str, Any]:
    """AUROCs, calibrated thresholds, precision/recall and lead times for every signal."""
    ind = [t for t in traces if t.condition == "in_distribution"]
    good, bad = [t for t in ind if t.success], [t for t in ind if not t.success]
    # Calibrate on the first half of the in-distribution seeds of each task, measure on the rest.
    half = {task: sorted(t.seed for t in ind if t.task == task) for task in {t.task for t in ind}}
    cutoff = {task: seeds[len(seeds) // 2] if seeds else 0 for task, seeds in half.items()}
    calib = [t for t in ind if t.seed < cutoff[t.task]]
    held_out = [t for t in ind if t.seed >= cutoff[t.task]]
    shifts = sorted({t.condition for t in traces} - {"in_distribution"})
    report: dict[str, Any] = {}
    for signal in SIGNALS:
        entry: dict[str, Any] = {"auroc": {}, "auroc_max": {}}
        for how, key in (("mean", "auroc"), ("max", "auroc_max")):
            ok, failed = [t.score(signal, how) for t in good], [t.score(signal, how) for t in bad]
            entry[key]["failure"] = _round(auroc(ok, failed))
            # Pooled, a signal that is merely higher on a harder task (push) looks predictive; within a
            # task it must tell this episode's failure from that one's success.
            per_task = {
                task: auroc(
                    [t.score(signal, how) for t in good if t.task == task],
                    [t.score(signal, how) for t in bad if t.task == task],
                )
                for task in sorted({t.task for t in ind})
            }
            entry[key]["failure_by_task"] = {task: _round(v) for task, v in per_task.items()}
            counted = [
                v
                for task, v in per_task.items()
                if min(sum(t.task == task for t in good), sum(t.task == task for t in bad)) >= 3
            ]
            entry[key]["failure_within_task"] = _round(float(np.mean(counted)) if counted else None)
            for shift in shifts:
                shifted = [t.score(signal, how) for t in traces if t.condition == shift]
                entry[key][shift] = _round(auroc([t.score(signal, how) for t in ind], shifted))
        try:
            threshold = calibrate_threshold(calib, signal, false_hold_rate)
        except ConfigError as exc:  # never measured (one sample): say so, keep going
            entry["threshold"] = None
            entry["why_no_threshold"] = str(exc)
            report[signal] = entry
            continue
        entry["threshold"] = _round(threshold, 5)
        ok = [t.score(signal, "max") for t in held_out if t.success]
        failed = [t.score(signal, "max") for t in held_out if not t.success]
        pr = {"failure_held_out": precision_recall(ok, failed, threshold)}
        for shift in shifts:
            shifted = [t.score(signal, "max") for t in traces if t.condition == shift]
            pr[shift] = precision_recall([t.score(signal, "max") for t in held_out], shifted, threshold)
        entry["at_threshold"] = {
            k: {n: _round(v) if isinstance(v, float) else v for n, v in d.items()} for k, d in pr.items()
        }
        leads = [lt for t in bad if (lt := t.lead_time(signal, threshold)) is not None]
        entry["lead_time_s"] = {
            "failures_flagged": len(leads),
            "failures": len(bad),
            "median": _round(float(np.median(leads)) if leads else None),
            "values": [round(v, 2) for v in leads],
        }
        report[signal] = entry
    return report


def choose(report: dict[str, Any]) -> str:
    """The signal with the best mean AUROC over failure (within a task) and the clear shifts."""

    def merit(signal: str) -> float:
        values = [report[signal]["auroc"].get(k) for k in ("failure_within_task", *CLEAR_SHIFTS)]
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values and report[signal].get("threshold") else -1.0

    return max(SIGNALS, key=merit)


def plot(traces: list[EpisodeTrace], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ind = [t for t in traces if t.condition == "in_distribution"]
    shifts = sorted({t.condition for t in traces} - {"in_distribution"})
    fig, axes = plt.subplots(1, len(SIGNALS), figsize=(5 * len(SIGNALS), 4.6), sharey=True)
    for ax, signal in zip(axes, SIGNALS, strict=True):
        curves = [("failure", [t for t in ind if t.success], [t for t in ind if not t.success])]
        curves += [(s, ind, [t for t in traces if t.condition == s]) for s in shifts]
        for name, neg, pos in curves:
            n, p = [t.score(signal) for t in neg], [t.score(signal) for t in pos]
            fpr, tpr = roc_points(n, p)
            area = auroc(n, p)
            ax.plot(fpr, tpr, label=f"{name} ({area:.2f})" if math.isfinite(area) else f"{name} (n/a)")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set_title(signal)
        ax.set_xlabel("false positive rate")
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("true positive rate")
    fig.suptitle("ROC of the episode-mean signal: failures vs successes, shifted vs in-distribution episodes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)


def summarize(results: list[tuple[EpisodeTrace, dict[str, Any]]]) -> dict[str, Any]:
    """Success and motion per condition and task."""
    table: dict[str, Any] = {}
    for trace, extra in results:
        row = table.setdefault(f"{trace.condition}/{trace.task}", {"episodes": 0, "successes": 0, "motion_failed": []})
        row["episodes"] += 1
        row["successes"] += int(trace.success)
        row.setdefault("holds", 0)
        row["holds"] += extra["holds"]
        if not trace.success:
            row["motion_failed"].append(extra["motion_rad"])
    for row in table.values():
        motion = row.pop("motion_failed")
        row["mean_arm_travel_in_failed_rad"] = _round(float(np.mean(motion)) if motion else None)
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/multitask_cpu")
    parser.add_argument("--tasks", default="reach,press_button,push", help="Panda tasks, comma-separated")
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help=f"of {', '.join(CONDITIONS)}")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per condition and task")
    parser.add_argument("--seed", type=int, default=100, help="first seed (training used seeds below 100)")
    parser.add_argument("--num-samples", type=int, default=4, help="flow-matching samples per inference")
    parser.add_argument("--false-hold-rate", type=float, default=0.1, help="of good episodes, for the threshold")
    parser.add_argument("--hold", action="store_true", help="then rerun with holding at the chosen threshold")
    parser.add_argument("--hold-conditions", default="in_distribution,covered_camera,unseen_instruction")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("docs/results/uncertainty.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/results/uncertainty.png"))
    parser.add_argument("--calibration-out", type=Path, default=Path("config/uncertainty/multitask_cpu.json"))
    parser.add_argument("--progress", type=Path, default=None, help="append one line per episode here")
    parser.add_argument(
        "--reuse", type=Path, default=None, help="take the episodes from this earlier output instead of running them"
    )
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    progress = args.progress.open("a") if args.progress else None

    def log(line: str) -> None:
        if progress:
            progress.write(line + "\n")
            progress.flush()

    controller = CheckpointController(args.checkpoint, num_samples=args.num_samples)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = range(args.seed, args.seed + args.episodes)
    start = time.perf_counter()
    results = []
    if args.reuse:  # analyse (and hold) again without re-running the same episodes
        for episode in json.loads(args.reuse.read_text())["episodes"]:
            extra = {k: episode[k] for k in ("instruction", "motion_rad", "holds")}
            results.append((EpisodeTrace.from_dict(episode), extra))
    for condition in [c.strip() for c in args.conditions.split(",") if c.strip() and not args.reuse]:
        for task in tasks:
            results += run_condition(controller, task, condition, seeds, None, log)
    traces = [trace for trace, _ in results]
    report = analyse(traces, args.false_hold_rate)
    chosen = choose(report)
    wall = time.perf_counter() - start
    output: dict[str, Any] = {
        "command": "MUJOCO_GL=egl python benchmarks/uncertainty_benchmark.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "checkpoint_id": controller.policy.checkpoint_id,
        "embodiment": "panda",
        "tasks": tasks,
        "episodes_per_condition_and_task": args.episodes,
        "seeds": [seeds[0], seeds[-1]],
        "num_samples": args.num_samples,
        "false_hold_rate": args.false_hold_rate,
        "episode_score": "auroc: the mean of the signal over the episode's inferences (length-neutral); "
        "auroc_max and at_threshold: its maximum (what a runtime holding at the first crossing sees)",
        "outcomes": summarize(results),
        "signals": report,
        "chosen_signal": chosen,
        "wall_seconds": round(wall, 1),
    }
    threshold = report[chosen].get("threshold")
    # The novelty guard holds beside the chosen signal, at the highest novelty any good calibration
    # episode reached (no false holds there): it is for inputs unlike training, not for doubt.
    calib = [t for t in traces if t.condition == "in_distribution" and t.seed < seeds[0] + len(seeds) // 2]
    try:
        novelty = calibrate_threshold(calib, "image_novelty", 0.0)
    except ConfigError:  # the checkpoint has no novelty.json
        novelty = math.nan
    output["novelty_threshold"] = _round(novelty, 3)
    if threshold:
        calibration = Calibration(
            novelty_threshold=novelty,
            signal=chosen,
            threshold=float(threshold),
            num_samples=args.num_samples if chosen in NEEDS_SAMPLES else 1,
            false_hold_rate=args.false_hold_rate,
            checkpoint_id=controller.policy.checkpoint_id,
            notes=f"benchmarks/uncertainty_benchmark.py on Panda {','.join(tasks)}, seeds {seeds[0]}-{seeds[-1]}; "
            "measured in synchronous rollouts (3/4 chunk executed)",
        )
        output["calibration"] = str(calibration.save(args.calibration_out))
        if args.hold:
            held = []
            for condition in [c.strip() for c in args.hold_conditions.split(",") if c.strip()]:
                for task in tasks:
                    holds = {chosen: float(threshold)} | ({} if math.isnan(novelty) else {"image_novelty": novelty})
                    held += run_condition(controller, task, condition, seeds, holds, log)
            output["holding"] = {
                "signal": chosen,
                "threshold": threshold,
                "novelty_threshold": _round(novelty, 3),
                "without": {k: v for k, v in output["outcomes"].items() if k.split("/")[0] in args.hold_conditions},
                "with": summarize(held),
            }
            output["wall_seconds"] = round(time.perf_counter() - start, 1)
    output["plot"] = plot(traces, args.plot)
    output["episodes"] = [t.to_dict() | e for t, e in results]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=1) + "\n")
    printed = {k: v for k, v in output.items() if k != "episodes"}
    print(json.dumps(printed, indent=2))
    return output


if __name__ == "__main__":
    main()
