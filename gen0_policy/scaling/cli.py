"""``gen0 scaling``: run a study (resumable, locally or on Ray), fit it, predict from it, report it.

gen0 scaling run config/scaling/study.yaml --data-root data/scaling --out runs/scaling
gen0 scaling fit runs/scaling --json
gen0 scaling predict runs/scaling --target-error 0.3
gen0 scaling report runs/scaling --out docs/scaling
"""

from __future__ import annotations

import argparse
import json

from gen0_policy.cli_args import size_arg


def _run(args: argparse.Namespace) -> int:
    from gen0_policy.scaling.study import load_study
    from gen0_policy.scaling.sweep import run_sweep

    study = load_study(args.study)
    if args.dry_run:
        for run in study.runs():
            print(run.id)
        print(f"{len(study.runs())} runs (study {study.name}, hash {study.hash})")
        return 0
    run_sweep(
        study,
        args.out,
        args.data_root,
        backend=args.backend,
        workers=args.workers,
        address=args.address,
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        only=args.only,
        max_runs=args.max_runs,
        threads=args.threads,
    )
    return 0


def _analysis(args: argparse.Namespace) -> dict:
    from gen0_policy.scaling.analysis import analyze, to_json
    from gen0_policy.scaling.sweep import read_results

    return to_json(analyze(read_results(args.results), bootstrap=args.bootstrap, targets=args.target_error or ()))


def _fit(args: argparse.Namespace) -> int:
    summary = _analysis(args)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for c in summary["curves"]:
        print(c["name"])
        for form, f in c["fits"].items():
            e = f" E={f['E']:.4g}" if "E" in f else ""
            print(f"  {form}: alpha={f['alpha']:.4g} {f['alpha_ci95']} x_c={f['x_c']:.4g}{e} R^2={f['r2']:.3f}")
        if "extrapolation" in c:
            ex = c["extrapolation"]
            print(f"  leave-largest-out: {ex['relative_error']:.1%} off ({'ok' if ex['ok'] else 'the curve bends'})")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from gen0_policy.errors import ConfigError

    if not args.target_error:
        raise ConfigError("say which error to predict for: --target-error 0.3 [0.2 ...]")
    print(json.dumps(_analysis(args)["predictions"], indent=2))
    return 0


def _success(args: argparse.Namespace) -> int:
    from gen0_policy.scaling.success import measure_success

    lines = measure_success(
        args.results, args.embodiment, args.task, args.only, args.episodes, args.seed, args.camera_size, args.workers
    )
    print(json.dumps({line["id"]: f"{line['successes']}/{line['protocol']['episodes']}" for line in lines}, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    from gen0_policy.scaling.report import write_report

    path = write_report(args.results, args.out, tuple(args.target_error or ()), args.bootstrap)
    print(path)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scaling",
        help="scaling-law studies: sweep, fit, predict, report",
        description="Measure how error falls with pretraining data, model size and compute, and how many "
        "demonstrations a new task needs from a pretrained base vs from scratch.",
    )
    sub = parser.add_subparsers(dest="scaling_command", metavar="SUBCOMMAND", required=True)

    run = sub.add_parser("run", help="run a study's unfinished runs (resumable)")
    run.add_argument("study", help="study YAML (see config/scaling/)")
    run.add_argument("--out", default="runs/scaling", help="results.jsonl and run folders go here")
    run.add_argument("--data-root", default=".", help="dataset paths in the study are relative to this folder")
    run.add_argument("--backend", choices=("local", "ray"), default="local")
    run.add_argument("--workers", type=int, default=1, help="local: runs at a time (processes)")
    run.add_argument("--address", default=None, help="ray: cluster address (e.g. auto); default starts a local Ray")
    run.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run asks for")
    run.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run asks for")
    run.add_argument("--only", default="", help="only runs whose id matches this regular expression")
    run.add_argument("--max-runs", type=int, default=0, help="stop after this many runs (0: all); rerun to go on")
    run.add_argument("--threads", type=int, default=0, help="torch threads per run (default: the study's)")
    run.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    run.set_defaults(func=_run)

    success = sub.add_parser("success", help="closed-loop success of the runs' post-trained checkpoints (resumable)")
    success.add_argument("results", help="a results.jsonl or the folder holding it; success.jsonl goes beside it")
    success.add_argument("--embodiment", required=True, help="the downstream task's robot, e.g. panda")
    success.add_argument("--task", required=True, help="the downstream task, e.g. press_button")
    success.add_argument("--only", default="", help="only runs whose id matches this regular expression")
    success.add_argument("--episodes", type=int, default=10, help="episodes per run (seeds SEED, SEED+1, ...)")
    success.add_argument("--seed", type=int, default=40_000, help="first seed; keep it off the demonstrations' seeds")
    success.add_argument("--camera-size", type=size_arg, default=None, help="WxH rendered (default: the robot's own)")
    success.add_argument("--workers", type=int, default=1, help="runs rolled out at a time (processes)")
    success.set_defaults(func=_success)

    for name, func, text in (
        ("fit", _fit, "fit power laws to a results file"),
        ("predict", _predict, "data or demonstrations needed for a target error"),
        ("report", _report, "fits.json, PNG plots and report.md"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("results", help="a results.jsonl or the folder holding it")
        p.add_argument("--target-error", type=float, nargs="*", help="errors to predict data/demos for")
        p.add_argument("--bootstrap", type=int, default=300, help="bootstrap refits for the intervals")
        if name == "fit":
            p.add_argument("--json", action="store_true")
        if name == "report":
            p.add_argument("--out", default=None, help="write here instead of next to the results")
        p.set_defaults(func=func)
