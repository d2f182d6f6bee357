"""``gen0 scaling success``: closed-loop success of a study's post-trained checkpoints.

Next-action error is what the fits use (it is what GEN-0 plots); whether the robot then does the
task is the number a user acts on. This rolls out the downstream checkpoint of each chosen run on
the downstream task in simulation, at the robot's own camera size, on seeds no demonstration used,
and appends one line per run to ``success.jsonl`` next to the results. Like the sweep it resumes: a
run measured under the same protocol is skipped, and a file written under another protocol is
refused rather than mixed in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gen0_policy.errors import ConfigError
from gen0_policy.scaling.sweep import append_result, drop_partial_line, read_results, run_local

SUCCESS = "success.jsonl"
PROTOCOL_KEYS = ("embodiment", "task", "episodes", "seed", "camera_size")


def read_success(folder: str | Path) -> list[dict[str, Any]]:
    """The success lines in ``folder`` (a results folder or a results.jsonl beside one); [] if none."""
    folder = Path(folder)
    return read_results((folder if folder.is_dir() else folder.parent) / SUCCESS)


def checkpoint_of(record: dict[str, Any]) -> str:
    """The run's post-trained checkpoint, relative to the results folder."""
    ckpts = record.get("checkpoints") or {}
    for kind in ("downstream", "posttrain"):
        if kind in ckpts:
            return ckpts[kind]
    raise ConfigError(f"run {record.get('id')} names no post-trained checkpoint")


def _one(checkpoint: str, protocol: dict[str, Any]) -> dict[str, Any]:
    """One run's episodes, in a worker process (one torch thread: the workers fill the cores)."""
    import torch

    from gen0_policy.sim.cli import rollout

    torch.set_num_threads(1)
    size = protocol["camera_size"]
    r = rollout(
        protocol["embodiment"],
        protocol["task"],
        checkpoint,
        protocol["episodes"],
        protocol["seed"],
        tuple(size) if size else None,
    )
    return {"successes": r["successes"], "success_rate": r["success_rate"], "episode_seconds": r["episode_seconds"]}


def measure_success(
    results: str | Path,
    embodiment: str,
    task: str,
    only: str = "",
    episodes: int = 10,
    seed: int = 40_000,
    camera_size: tuple[int, int] | None = None,
    workers: int = 1,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Roll out the chosen runs' checkpoints not yet measured; return every success line."""
    results = Path(results)
    folder = results if results.is_dir() else results.parent
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    try:
        pattern = re.compile(only)
    except re.error as exc:
        raise ConfigError(f"--only {only!r} is not a regular expression: {exc}") from exc
    records = [r for r in read_results(results) if pattern.search(r["id"])]
    if not records:
        raise ConfigError(f"no finished run in {folder} matches --only {only!r}")
    protocol = {
        "embodiment": embodiment,
        "task": task,
        "episodes": episodes,
        "seed": seed,
        "camera_size": list(camera_size) if camera_size else None,
    }
    path = folder / SUCCESS
    drop_partial_line(path)
    lines = read_success(folder)
    for line in lines:
        old = line["protocol"]
        differ = {k: (old.get(k), protocol[k]) for k in PROTOCOL_KEYS if old.get(k) != protocol[k]}
        if differ:
            raise ConfigError(
                f"{path} holds success measured under another protocol ({differ}, as (file, now)); "
                "move it aside or measure with the same settings"
            )
    done = {line["id"] for line in lines}
    todo = [r for r in records if r["id"] not in done]
    log(f"{len(done)} runs measured, {len(todo)} to roll out now ({episodes} episodes each from seed {seed})")
    jobs = {r["id"]: (str(folder / checkpoint_of(r)), protocol) for r in todo}
    by_id = {r["id"]: r for r in todo}
    outcomes = run_local(_one, jobs.items(), workers)
    failed = []
    for run_id, outcome in outcomes:
        if isinstance(outcome, Exception):
            failed.append(run_id)
            log(f"FAILED {run_id}: {outcome}")
            continue
        record = by_id[run_id]
        line = {
            "id": run_id,
            "kind": record["kind"],
            "study_hash": record.get("study_hash"),
            "checkpoint": checkpoint_of(record),
            "protocol": protocol,
            **outcome,
        }
        append_result(path, line)
        lines.append(line)
        log(f"done {run_id}: {outcome['successes']}/{episodes}")
    if failed:
        raise ConfigError(f"{len(failed)} runs failed ({failed}); the others are saved, run again to retry")
    return lines


def success_rows(records: list[dict[str, Any]], lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each measured run beside its next-action error, for the report: pretraining runs by model
    size and data, then the efficiency runs by arm and demonstrations."""
    by_id = {r["id"]: r for r in records}
    rows = []
    for line in lines:
        r = by_id.get(line["id"])
        if r is None:
            continue
        run, episodes = r["run"], r["data"]["episodes"]
        if r["kind"] == "efficiency":
            what = f"{run.get('arm')}, {episodes} demos"
        else:
            what = f"{episodes} pretraining episodes, then {r['downstream_data']['episodes']} demos"
        order = (r["kind"] != "pretrain", r["model"]["parameters"], run.get("arm") or "", episodes, r["id"])
        row = {"id": line["id"], "model": r["model"]["name"], "what": what}
        row |= {"downstream_error": r.get("downstream_error"), "successes": line["successes"]}
        rows.append((order, row | {"episodes": line["protocol"]["episodes"]}))
    return [row for _, row in sorted(rows, key=lambda x: x[0])]
