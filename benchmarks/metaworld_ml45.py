"""Issue 15's post-training study on Meta-World's ML45 split: does pretraining on the 45 training tasks
help a network learn the 5 held-out test tasks from a handful of demonstrations? Every step is the
documented command a user runs (collection, ``gen0 train`` with ``config/train/metaworld_ml45_*.yaml``,
``gen0 bench metaworld --suite ml45_test``); each is skipped when its output is already complete, so
a killed run resumes. Prints (and with ``--out`` writes) JSON: per test task and on average, success of

- the ML45 base, zero-shot (it never saw the test tasks),
- the base post-trained on the test demonstrations,
- the same network trained from scratch on the same demonstrations for the same steps,

with the training hours on this machine beside each. The base is the shipped
``checkpoints/metaworld_ml45`` (its training took 0.21 h here, 2026-12-05); ``--retrain-base`` collects
the 45 tasks' demonstrations and trains it again into ``runs/metaworld_ml45_base`` (about 40 min more)
and then uses that (point ``init_from`` of ``metaworld_ml45_adapt.yaml`` at it too).

    python benchmarks/metaworld_ml45.py --out docs/results/metaworld_ml45.json   # 20 min on 2 quiet cores
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

from gen0_policy.data.lerobot import is_dataset
from gen0_policy.model.checkpoint import resolve
from gen0_policy.sim.metaworld_bench import read_results, summarize

REPO = Path(__file__).resolve().parents[1]
GEN0 = [sys.executable, "-m", "gen0_policy.cli"]
RUNS = {  # what each checkpoint is, and the config that trains it
    "base_zero_shot": "metaworld_ml45_base",
    "post_trained": "metaworld_ml45_adapt",
    "from_scratch": "metaworld_ml45_scratch",
}
BASE = RUNS["base_zero_shot"]
SHIPPED_BASE = "checkpoints/metaworld_ml45"
SHIPPED_BASE_TRAIN_HOURS = 0.210  # measured when it was trained here (2026-12-05); the checkpoint holds the rest


def shipped_base_training() -> dict:
    """The shipped base's training, as ``train`` reports a run's, from the checkpoint's own config."""
    shipped = json.loads((REPO / SHIPPED_BASE / "config.json").read_text())
    return {
        "config": f"config/train/{shipped['run']}.yaml",
        "init_from": shipped["train_config"]["init_from"],
        "steps": shipped["step"],
        "train_hours": SHIPPED_BASE_TRAIN_HOURS,
        "val_next_action_error": round(shipped["metrics"]["val/next_action_mse"], 4),
        "checkpoint": SHIPPED_BASE,
    }


def run(*args: str) -> None:
    print("$ gen0", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([*GEN0, *args], cwd=REPO, check=True)


def collect(suite: str, episodes: int, out: Path) -> None:
    if not is_dataset(REPO / out):
        run("sim", "collect-metaworld", "--task", suite, "--episodes", str(episodes), "--seed", "1000",
            "--workers", "2", "--out", str(out))  # fmt: skip


def train(name: str) -> dict:
    """Train ``config/train/NAME.yaml`` unless its run holds the last step; the run's wall time and
    its held-out next-action error, from its own progress file."""
    config = yaml.safe_load((REPO / "config" / "train" / f"{name}.yaml").read_text())
    out = REPO / config["out_dir"]
    done = (out / "latest").exists() and resolve(out).name == f"ckpt-{int(config['steps']):07d}"
    if not done:
        run("train", "--config", f"config/train/{name}.yaml")
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines() if line.strip()]
    times = [e["time"] for e in events if "time" in e]
    validation = [e for e in events if e.get("event") == "validation"]
    return {
        "config": f"config/train/{name}.yaml",
        "init_from": config.get("init_from", ""),
        "steps": int(config["steps"]),
        "train_hours": round((max(times) - min(times)) / 3600, 3),  # the last session that trained it
        "val_next_action_error": validation[-1]["validation_error"] if validation else None,
    }


def bench(run_dir: str) -> dict:
    results = REPO / "runs" / "bench" / f"metaworld_ml45_test_{Path(run_dir).name}.jsonl"
    run("bench", "metaworld", "--suite", "ml45_test", "--checkpoint", run_dir, "--results", str(results))
    header, records = read_results(results)
    summary = summarize(header, records)
    return {
        "average_success": round(summary["average_success"], 4),
        "per_task": {t: f"{v['successes']}/{v['episodes']}" for t, v in summary["per_task"].items()},
        "policy_id": summary["policy_id"],
        "eval_seconds": round(sum(r["seconds"] for r in records), 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-episodes", type=int, default=10, help="demonstrations per ML45 training task")
    p.add_argument("--test-episodes", type=int, default=10, help="demonstrations per test task (post-training)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--retrain-base", action="store_true", help=f"train the base again instead of {SHIPPED_BASE}")
    args = p.parse_args()
    if args.retrain_base:
        collect("ml45_train", args.train_episodes, Path("data/metaworld/ml45_train"))
    collect("ml45_test", args.test_episodes, Path("data/metaworld/ml45_test"))
    trained = {name: train(name) for name in RUNS.values() if name != BASE or args.retrain_base}
    where = {
        name: yaml.safe_load((REPO / "config" / "train" / f"{name}.yaml").read_text())["out_dir"]
        for name in RUNS.values()
    }
    if not args.retrain_base:
        trained[BASE], where[BASE] = shipped_base_training(), SHIPPED_BASE
    result = {
        "benchmark": "metaworld_ml45",
        "protocol": "gen0 bench metaworld --suite ml45_test: 10 episodes per test task, seeds 0-9 "
        "(the demonstrations used seeds 1000+), success if the env reports it within 500 steps",
        "demonstrations": {"ml45_train_per_task": args.train_episodes, "ml45_test_per_task": args.test_episodes},
        "policies": {},
    }
    for label, name in RUNS.items():
        training = dict(trained[name])
        if label == "post_trained":  # its compute includes the pretraining it starts from
            training["train_hours_with_pretraining"] = round(training["train_hours"] + trained[BASE]["train_hours"], 3)
        result["policies"][label] = {"training": training, **bench(where[name])}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
