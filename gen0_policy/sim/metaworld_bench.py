"""Meta-World evaluation by the benchmark's protocol, with bookkeeping that lets MT50 run in pieces.

Protocol: every task of the suite (MT10 or MT50), ``episodes`` episodes each; episode i of every
task uses seed SEED + i, so every policy meets the same layouts; an episode succeeds if the env
reports ``info["success"]`` within its own step limit (500). Reported as the literature does: the
success rate of each task, the mean over the tasks of each difficulty group (easy, medium, hard,
very hard), and the mean over all tasks.

The results file is JSON lines: a header with the protocol and the policy's identity, then one line
per finished episode, flushed as it ends. Running the same command again skips what is there, so a
killed or partial run (``--tasks`` picks a piece of the suite) resumes; a file written under another
protocol or by another policy is refused rather than mixed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gen0_policy.errors import ConfigError
from gen0_policy.paths import SHIPPED_BY_EMBODIMENT
from gen0_policy.sim.metaworld_env import DIFFICULTY, SUITES, difficulty, suite_tasks, task_name

# ``execute`` changes what a checkpoint does (None: the Sawyer's own, half a chunk; files from before it
# was recorded read as None), so a file run with other rows per inference is refused too.
PROTOCOL_KEYS = ("suite", "episodes", "seed", "max_steps", "policy_id", "adapter", "execute")


@dataclass(frozen=True)
class BenchConfig:
    suite: str = "mt10"
    episodes: int = 10  # per task
    seed: int = 0  # episode i of every task uses seed SEED + i
    policy: str = "expert"  # "expert" (Meta-World's scripted policies) or a checkpoint folder
    tasks: tuple[str, ...] | None = None  # the piece of the suite to run now; None = all of it
    max_steps: int | None = None  # shorter episodes than the env's limit: not the benchmark, for tests
    execute: int | None = None  # checkpoint: chunk rows played between inferences

    def __post_init__(self) -> None:
        suite = suite_tasks(self.suite)
        if self.tasks is not None:
            tasks = tuple(task_name(t) for t in self.tasks)
            outside = [t for t in tasks if t not in suite]
            if outside:
                raise ConfigError(f"tasks {outside} are not in {self.suite}; its tasks are {list(suite)}")
            object.__setattr__(self, "tasks", tasks)
        if self.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {self.episodes}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def run_tasks(self) -> tuple[str, ...]:
        return self.tasks or suite_tasks(self.suite)


def read_results(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(header, episode records) of a results file; (None, []) when there is none. A torn last line
    (a run killed mid-write) is ignored."""
    if not path.is_file():
        return None, []
    header, records = None, []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "header":
            header = {"adapter": 1, **row}  # files from before the adapter had a version carry none
        elif row.get("kind") == "episode":
            records.append(row)
    return header, records


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (a run killed mid-write), so appends start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def summarize(header: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task, per difficulty group and overall success, from whatever episodes are done."""
    suite = suite_tasks(header["suite"])
    episodes = int(header["episodes"])
    by_task: dict[str, dict[int, bool]] = {}
    for r in records:
        if r["episode"] < episodes:
            by_task.setdefault(r["task"], {})[r["episode"]] = bool(r["success"])
    per_task = {
        t: {
            "episodes": len(by_task[t]),
            "successes": sum(by_task[t].values()),
            "success_rate": sum(by_task[t].values()) / len(by_task[t]),
            "difficulty": difficulty(t),
        }
        for t in suite
        if t in by_task
    }
    groups = {}
    for group, tasks in DIFFICULTY.items():
        rates = [per_task[t]["success_rate"] for t in tasks if t in suite and t in per_task]
        total = sum(t in suite for t in tasks)
        if total:
            groups[group] = {
                "tasks": len(rates),
                "of": total,
                "success_rate": sum(rates) / len(rates) if rates else None,
            }
    complete = [t for t in per_task if per_task[t]["episodes"] == episodes]
    rates = [v["success_rate"] for v in per_task.values()]
    return {
        "suite": header["suite"],
        "policy": header["policy"],
        "policy_id": header["policy_id"],
        "episodes_per_task": episodes,
        "seed": header["seed"],
        "max_steps": header["max_steps"],
        "adapter": header["adapter"],
        "execute": header.get("execute"),
        "complete": len(complete) == len(suite),
        "tasks_done": len(complete),
        "tasks_missing": [t for t in suite if t not in complete],
        "average_success": sum(rates) / len(rates) if rates else None,
        "difficulty": groups,
        "per_task": per_task,
    }


def _policy_id(policy: str, controller: Any) -> str:
    return "metaworld-scripted-experts" if policy == "expert" else str(controller.policy.checkpoint_id)


def run_bench(
    config: BenchConfig,
    results: Path,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the episodes of ``config`` that ``results`` lacks, append them, return :func:`summarize`."""
    from gen0_policy.sim.metaworld_env import ADAPTER_VERSION, MetaWorldEnv, make_controller, run_episode

    controller = make_controller(config.policy, config.execute)
    header = {
        "kind": "header",
        "suite": config.suite,
        "episodes": config.episodes,
        "seed": config.seed,
        "max_steps": config.max_steps,
        "policy": config.policy,
        "policy_id": _policy_id(config.policy, controller),
        "adapter": ADAPTER_VERSION,
        "execute": config.execute,
    }
    old, records = read_results(results)
    if old is not None:
        differ = {k: (old.get(k), header[k]) for k in PROTOCOL_KEYS if old.get(k) != header[k]}
        if differ:
            raise ConfigError(
                f"{results} holds results of another protocol or policy ({differ}, as (file, now)); "
                "use a new --results file or run with the same settings"
            )
    results.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(results)
    done = {(r["task"], r["episode"]) for r in records}
    with results.open("a") as f:
        if old is None:
            f.write(json.dumps(header) + "\n")
            f.flush()
        for task in config.run_tasks:
            todo = [i for i in range(config.episodes) if (task, i) not in done]
            if not todo:
                continue
            cameras = None if controller.needs_images else []  # the expert needs no pictures
            with MetaWorldEnv(task, cameras=cameras) as env:
                for i in todo:
                    start = time.perf_counter()
                    r = run_episode(env, controller, config.seed + i, max_steps=config.max_steps)
                    row = {
                        "kind": "episode",
                        "task": task,
                        "episode": i,
                        "seed": r.seed,
                        "success": r.success,
                        "steps": r.steps,
                        "seconds": round(time.perf_counter() - start, 3),
                    }
                    f.write(json.dumps(row) + "\n")
                    f.flush()  # a killed run keeps every finished episode
                    records.append(row)
                    if progress:
                        progress(f"{task} episode {i}: {'success' if r.success else 'failure'} in {r.steps} steps")
    warnings = list(getattr(getattr(controller, "policy", None), "warnings", {}).values())  # e.g. another mount
    return summarize(header, records) | {"results": str(results), "config": asdict(config), "warnings": warnings}


# -- gen0 bench ---------------------------------------------------------------------------------------
def _print_summary(summary: dict[str, Any]) -> None:
    def pct(rate: float | None) -> str:
        return "  n/a" if rate is None else f"{100 * rate:5.1f}%"

    for task, v in summary["per_task"].items():
        print(f"{task:28s} {v['difficulty']:10s} {v['successes']:3d}/{v['episodes']:<3d} {pct(v['success_rate'])}")
    for group, v in summary["difficulty"].items():
        print(f"{group:28s} {v['tasks']}/{v['of']} tasks      {pct(v['success_rate'])}")
    state = "complete" if summary["complete"] else f"partial: {len(summary['tasks_missing'])} tasks to go"
    average = pct(summary["average_success"])
    print(f"{summary['suite']} average success {average} ({state}); results in {summary['results']}")


def _bench_metaworld(args: Any) -> int:
    from gen0_policy.paths import shipped_checkpoint

    policy = "expert" if args.policy == "expert" else str(args.checkpoint or shipped_checkpoint("sawyer"))
    name = "expert" if policy == "expert" else Path(policy).name
    results = args.results or Path("runs") / "bench" / f"metaworld_{args.suite}_{name}.jsonl"
    tasks = tuple(t for t in args.tasks.split(",") if t.strip()) if args.tasks else None
    config = BenchConfig(args.suite, args.episodes, args.seed, policy, tasks, args.max_steps, args.execute)
    summary = run_bench(config, Path(results), progress=None if args.json else print)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def register(subparsers: Any) -> None:
    bench = subparsers.add_parser("bench", help="outside benchmarks by their own protocols (Meta-World)")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    p = sub.add_parser(
        "metaworld",
        help="Meta-World MT10/MT50: per-task, per-difficulty and average success; resumable",
        description="Every task of the suite, EPISODES episodes each with seeds SEED..SEED+EPISODES-1; success if "
        "the env reports success within its 500-step limit. Results are appended to a JSON-lines file as each "
        "episode ends; the same command resumes a partial run.",
    )
    p.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default="mt10",
        help="benchmark suite (ml45_test: the 5 tasks ML45 holds out, for post-training studies)",
    )
    p.add_argument(
        "--policy",
        choices=("checkpoint", "expert"),
        default="checkpoint",
        help="a checkpoint (--checkpoint), or Meta-World's scripted experts (a sanity number)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help=f"policy folder (default: checkpoints/{SHIPPED_BY_EMBODIMENT['sawyer']})",
    )
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (the protocol: 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of episode 0 of every task")
    p.add_argument("--tasks", default=None, help="comma-separated piece of the suite to run now (default: all)")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="JSON-lines results file (default runs/bench/metaworld_SUITE_POLICY.jsonl)",
    )
    p.add_argument("--max-steps", type=int, default=None, help="cut episodes short (not the benchmark; for tests)")
    p.add_argument("--execute", type=int, default=None, help="checkpoint: chunk rows played between inferences")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_bench_metaworld)
    bench.set_defaults(func=lambda args: bench.print_help() or 2)
