"""Run a study: each run is the one training loop (``train.loop.train``), configured; each result is
one JSON line appended to ``OUT/results.jsonl``; runs already in the file are skipped, so a study
runs in pieces, hours apart.

Runners: local (one run after another, or N processes at a time) and Ray (each run a Ray task
asking for its CPUs/GPUs). Either way the runs are the same pure function of (study, run, folders)
and the parent process alone appends the results, so the file is the same whichever runs them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.data.episode import Episode
from gen0_policy.errors import ConfigError, Gen0Error
from gen0_policy.scaling.study import DataSource, Run, Study

RESULTS = "results.jsonl"
Log = Callable[[str], None]

# Decoded datasets per process: a sequential sweep (or a reused Ray worker) decodes each folder once.
_DATASETS: dict[tuple[str, int], list[Episode]] = {}


# -- data -------------------------------------------------------------------------------------------
def _episodes(source: DataSource, data_root: Path, image_size: int) -> list[Episode]:
    from gen0_policy.data.lerobot import load_episodes

    path = (data_root / source.path).resolve()
    key = (str(path), image_size)
    if key not in _DATASETS:
        _DATASETS[key] = load_episodes(path, image_size=(image_size, image_size))
    return _DATASETS[key]


def _labelled(sources: Sequence[DataSource], data_root: Path, image_size: int) -> list[tuple[DataSource, Episode]]:
    return [(s, e) for s in sources for e in _episodes(s, data_root, image_size)]


def pretraining_pool(study: Study, data_root: Path, image_size: int) -> list[tuple[DataSource, Episode]]:
    """All pretraining episodes in the study's one fixed order: size D is its first D (nested sets)."""
    pool = _labelled(study.pretrain.datasets, data_root, image_size)
    order = np.random.default_rng(study.shuffle_seed).permutation(len(pool))
    return [pool[i] for i in order]


def _take(pool: list[tuple[DataSource, Episode]], count: int, what: str) -> list[tuple[DataSource, Episode]]:
    if count > len(pool):
        raise ConfigError(
            f"{what}: the study asks for {count} episodes but the datasets hold {len(pool)}; collect more"
        )
    return pool[:count]


def _mixture(labelled: Sequence[tuple[DataSource, Episode]]) -> list[Any]:
    """Back into one weighted source per dataset, in the datasets' order."""
    from gen0_policy.data.windows import MixtureSource

    groups: dict[str, tuple[DataSource, list[Episode]]] = {}
    for source, episode in labelled:
        groups.setdefault(source.name, (source, []))[1].append(episode)
    return [MixtureSource(name, eps, source.weight, source.hold_after_end) for name, (source, eps) in groups.items()]


def data_size(episodes: Sequence[Episode]) -> dict[str, float]:
    """Episodes, frames and hours of interaction."""
    frames = sum(len(e) for e in episodes)
    seconds = sum(len(e) / e.fps for e in episodes)
    return {"episodes": len(episodes), "frames": frames, "hours": round(seconds / 3600, 6)}


# -- one run ----------------------------------------------------------------------------------------
def model_counts(model_config: Any, cache_dir: Path) -> dict[str, int]:
    """Parameters and training FLOPs per sample from the model's own counting, kept per config in
    ``cache_dir`` (counting traces the network on the meta device: seconds, the same every run)."""
    from gen0_policy.model.counting import describe

    config = model_config.to_dict()
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())["counts"]
    info = describe(model_config)
    counts = {"parameters": info["parameters"]["total"], "train_flops_per_sample": info["flops"]["train_per_sample"]}
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"config": config, "counts": counts}))
    tmp.replace(path)  # atomic: parallel runs may race to write the same file
    return counts


def _train(study: Study, out_dir: Path, overrides: dict[str, Any], owned: dict[str, Any], sources: list) -> dict:
    """The project's training loop with the sweep's defaults; returns its last loss and the model's
    counts. ``out_dir`` is STUDY_OUT/runs/<id>/<phase>; the counts cache is STUDY_OUT/counts."""
    from gen0_policy.model.checkpoint import load_policy
    from gen0_policy.model.config import preset
    from gen0_policy.train.config import TrainConfig
    from gen0_policy.train.loop import train

    defaults = {"val_fraction": 0.0, "progress": False, "keep_checkpoints": 1, "threads": study.threads}
    config = TrainConfig.from_dict({**defaults, **overrides, **owned, "out_dir": str(out_dir), "resume": True})
    if config.init_from:
        model_config = load_policy(config.init_from).config.with_overrides(**config.model)
    else:
        model_config = preset(config.preset, **config.model)
    counts = model_counts(model_config, out_dir.parents[2] / "counts")
    # A phase that had finished before a crash returns no metrics when resumed: its checkpoint has them.
    metrics = train(config, sources) or load_policy(out_dir).meta.get("metrics", {})
    return {
        "parameters": counts["parameters"],
        "flops": counts["train_flops_per_sample"] * config.batch_size * config.steps,
        "loss": metrics.get("loss"),
    }


def _model_image_size(study: Study, model: str) -> int:
    from gen0_policy.model.config import preset

    spec = study.model(model)
    return preset(spec.preset, **spec.model).image_size


def execute(study_data: dict[str, Any], run_data: dict[str, Any], out_dir: str, data_root: str) -> dict[str, Any]:
    """Do one run and return its result line. Plain data in and out, so a process pool or a Ray
    worker can call it; a run killed half-way resumes from its last checkpoint next time."""
    import torch

    from gen0_policy.scaling.evaluate import next_action_error

    study, run = Study.from_dict(study_data), Run(**run_data)
    out, root = Path(out_dir), Path(data_root)
    run_dir = out / "runs" / run.id
    torch.set_num_threads(study.threads)
    start = time.perf_counter()
    spec = study.model(run.model)
    size = _model_image_size(study, run.model)
    windows = study.evaluation.windows_per_episode
    down = study.downstream
    down_pool = _labelled(down.datasets, root, size)
    down_heldout = [e for _, e in _labelled(down.heldout, root, size)]
    record: dict[str, Any] = {"id": run.id, "kind": run.kind, "study": study.name, "study_hash": study.hash}
    record["run"] = run.to_dict()
    if run.kind == "pretrain":
        chosen = _take(pretraining_pool(study, root, size), run.episodes, f"pretrain run {run.id}")
        model = {"preset": spec.preset, "model": spec.model, "seed": run.seed}
        pre = _train(study, run_dir / "pretrain", study.pretrain.train, model, _mixture(chosen))
        heldout = [e for _, e in _labelled(study.pretrain.heldout, root, size)]
        demos = _take(down_pool, down.demos, "downstream.demos")
        owned = {"init_from": str(run_dir / "pretrain"), "seed": run.seed}
        post = _train(study, run_dir / "downstream", down.train, owned, _mixture(demos))
        record.update(
            model={"name": spec.name, "preset": spec.preset, "overrides": spec.model, "parameters": pre["parameters"]},
            data=data_size([e for _, e in chosen]),
            downstream_data=data_size([e for _, e in demos]),
            compute_flops={"pretrain": pre["flops"], "downstream": post["flops"]},
            pretrain_error=next_action_error(run_dir / "pretrain", heldout, windows),
            downstream_error=next_action_error(run_dir / "downstream", down_heldout, windows),
            train_loss={"pretrain": pre["loss"], "downstream": post["loss"]},
            checkpoints={"pretrain": f"runs/{run.id}/pretrain", "downstream": f"runs/{run.id}/downstream"},
        )
    elif run.kind == "efficiency":
        assert study.efficiency is not None
        demos = _take(down_pool, run.demos, f"efficiency run {run.id}")
        if run.arm == "base":
            owned = {"init_from": str(out / "runs" / study.base_run().id / "pretrain"), "seed": run.seed}
            overrides = study.efficiency.train
        else:
            owned = {"preset": spec.preset, "model": spec.model, "seed": run.seed}
            overrides = study.efficiency.scratch_train
        post = _train(study, run_dir / "posttrain", overrides, owned, _mixture(demos))
        record.update(
            model={"name": spec.name, "preset": spec.preset, "overrides": spec.model, "parameters": post["parameters"]},
            data=data_size([e for _, e in demos]),
            compute_flops={"posttrain": post["flops"]},
            downstream_error=next_action_error(run_dir / "posttrain", down_heldout, windows),
            train_loss={"posttrain": post["loss"]},
            checkpoints={"posttrain": f"runs/{run.id}/posttrain"},
        )
    else:
        raise ConfigError(f"unknown run kind {run.kind!r}")
    record["timing"] = {"wall_s": round(time.perf_counter() - start, 2), "finished": datetime.now(UTC).isoformat()}
    return record


# -- the results file -------------------------------------------------------------------------------
def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every result line; a line cut short by a crash (the last one) is dropped, not fatal."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                continue
            raise ConfigError(f"{path} line {number} is not JSON ({exc}); fix or delete that line") from exc
    return records


def drop_partial_line(path: Path) -> None:
    """A crash mid-write leaves a last line without its newline; cut it, or the next result would
    be glued to it."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def append_result(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- runners ----------------------------------------------------------------------------------------
def run_local(fn: Callable[..., Any], jobs: Iterable[tuple[Any, tuple]], workers: int) -> Any:
    """Yield (key, ``fn(*args)`` or the exception it raised) for each (key, args) as jobs finish; in
    this process, or in ``workers`` spawned ones. One failed job never loses the others."""
    if workers <= 1:
        for key, args in jobs:
            try:
                yield key, fn(*args)
            except Exception as exc:
                yield key, exc
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(fn, *args): key for key, args in jobs}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:
                yield futures[future], exc


def _local(jobs: list[tuple], workers: int, log: Log) -> Any:
    """Yield (run, record or exception) as runs finish."""
    return run_local(execute, [(job[1], job) for job in jobs], workers)


def _ray(jobs: list[tuple], cpus: float, gpus: float, log: Log) -> Any:
    import ray

    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(execute)
    pending = {task.remote(*job): job[1] for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        run = pending.pop(done[0])
        try:
            yield run, ray.get(done[0])
        except Exception as exc:  # RayTaskError wraps the run's own exception
            yield run, exc


def run_sweep(
    study: Study,
    out_dir: str | Path,
    data_root: str | Path = ".",
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    cpus_per_run: float = 1.0,
    gpus_per_run: float = 0.0,
    only: str = "",
    max_runs: int = 0,
    threads: int = 0,
    log: Log = print,
) -> list[dict[str, Any]]:
    """Run the study's unfinished runs (those matching ``only``, at most ``max_runs``); returns the
    new results. ``threads`` (0: the study's) sets torch threads per run."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got {backend!r}")
    if threads:
        study = Study.from_dict({**study.to_dict(), "threads": threads})
    out, root = Path(out_dir).resolve(), Path(data_root).resolve()
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / RESULTS
    existing = read_results(results_path)
    drop_partial_line(results_path)
    other = sorted({r.get("study_hash") for r in existing} - {study.hash})
    if other:
        raise ConfigError(
            f"{results_path} holds results of another version of the study (hash {other}, this one {study.hash}); "
            "a protocol is fixed before it runs: use a new --out folder for a changed study"
        )
    folders = [*study.pretrain.datasets, *study.pretrain.heldout, *study.downstream.datasets, *study.downstream.heldout]
    missing = sorted({s.path for s in folders if not (root / s.path / "meta" / "info.json").is_file()})
    if missing:
        raise ConfigError(
            f"datasets {missing} are not LeRobot v3 folders under --data-root {root}; "
            "collect them with the `gen0 sim collect` commands at the top of the study file"
        )
    (out / "study.json").write_text(json.dumps({"hash": study.hash, **study.to_dict()}, indent=2))
    done = {r["id"] for r in existing}
    pattern = re.compile(only) if only else None
    todo = [r for r in study.runs() if r.id not in done and (pattern is None or pattern.search(r.id))]
    if max_runs:
        todo = todo[:max_runs]
    log(f"{len(done)} runs done, {len(todo)} to run now, {len(study.runs())} in the study")
    new: list[dict[str, Any]] = []
    failures: list[str] = []
    ray_started = False
    if backend == "ray" and todo:
        import ray

        if not ray.is_initialized():
            ray.init(address=address) if address else ray.init(include_dashboard=False)
            ray_started = True
    try:
        # Only an efficiency run from the base waits, for the base's checkpoint; the rest (scratch too) go first.
        waits = [r for r in todo if r.arm == "base"]
        for wave in ([r for r in todo if r.arm != "base"], waits):
            ready = []
            for run in wave:
                if run.arm == "base" and study.base_run().id not in done:
                    failures.append(f"{run.id}: its base {study.base_run().id} has not finished; run it first")
                else:
                    ready.append(run)
            jobs = [(study.to_dict(), r.to_dict(), str(out), str(root)) for r in ready]
            runner = _ray(jobs, cpus_per_run, gpus_per_run, log) if backend == "ray" else _local(jobs, workers, log)
            for run_data, result in runner:
                run_id = Run(**run_data).id
                if isinstance(result, Exception):
                    reason = (
                        str(result) if isinstance(result, Gen0Error) else "".join(traceback.format_exception(result))
                    )
                    failures.append(f"{run_id}: {reason.strip()}")
                    log(f"FAILED {run_id}: {reason.strip().splitlines()[-1]}")
                    continue
                append_result(results_path, result)
                done.add(run_id)
                new.append(result)
                log(f"done {run_id}: " + ", ".join(f"{k}={result[k]:.4g}" for k in ERRORS if k in result))
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    if failures:
        raise Gen0Error(
            f"{len(failures)} runs failed (finished ones are saved; rerun to retry):\n" + "\n".join(failures)
        )
    return new


ERRORS = ("pretrain_error", "downstream_error")
