"""``gen0 bringup``: start the suite's nodes as separate processes with the same parameter files the
launch files use, for machines without ROS launch (``launch``/``launch_ros`` are not on PyPI).

    gen0 bringup sim --embodiment panda --task reach --checkpoint runs/panda/latest
    gen0 bringup policy --embodiment panda --checkpoint runs/panda/latest   # an existing robot stack
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gen0_policy.embodiment import load_embodiment
from gen0_policy.errors import ConfigError
from gen0_policy.paths import config_dir, shipped_checkpoint


def node_command(module: str, params_file: Path, params: dict[str, object]) -> list[str]:
    """``python -m <module> --ros-args --params-file F -p k:=v ...`` (this interpreter: no PATH games)."""
    command = [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file)]
    for key, value in params.items():
        if value == "":
            continue  # the default from the parameter file ("-p key:=" does not parse)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["-p", f"{key}:={text}"]
    return command


def policy_params(args: argparse.Namespace, sim_time: bool) -> dict[str, object]:
    params: dict[str, object] = {
        "embodiment": args.embodiment,
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "use_sim_time": sim_time,
        "autostart": True,
        "mode": args.mode,
    }
    if args.instruction:
        params["instruction"] = args.instruction
    for item in args.param:
        key, _, value = item.partition(":=")
        params[key] = value
    return params


def commands(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    config = config_dir()
    policy_yaml = Path(args.policy_params or config / "policy_node.yaml")
    out = []
    if args.target == "sim":
        sim_yaml = Path(args.sim_params or config / "sim_node.yaml")
        sim = {"embodiment": args.embodiment, "task": args.task, "seed": args.seed}
        embodiment = load_embodiment(args.embodiment)
        if embodiment.sim.get("simulator") == "metaworld":  # its physics steps at its own 80 Hz, no finer
            sim["update_rate"] = embodiment.control_rate_hz
        out.append(("sim", node_command("gen0_policy.ros.sim_node", sim_yaml, sim)))
    policy = node_command("gen0_policy.ros.policy_node", policy_yaml, policy_params(args, args.target == "sim"))
    out.append(("policy", policy))
    return out


def node_env() -> dict[str, str]:
    """This process's environment plus the suite's safe defaults for a node process."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # never multicast off the machine by accident
    fastdds = config_dir() / "fastdds.xml"
    if fastdds.is_file():
        env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(fastdds))  # big shared-memory segments for images
    return env


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In the child, before exec: the kernel sends SIGTERM when the launcher dies, even by SIGKILL, so a
    node never outlives it as an orphan (Linux; elsewhere the launcher's own handlers must do)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def start_node(command: list[str], log: Path | None = None) -> subprocess.Popen:
    """Start a node command in its own process group (so stopping it stops its children), output to
    ``log``; it dies with this process, however this process ends."""
    out = log.open("w") if log is not None else None
    parent = os.getpid()
    return subprocess.Popen(command, env=node_env(), stdout=out, stderr=subprocess.STDOUT if out else None,
                            start_new_session=True, preexec_fn=lambda: die_with_parent(parent))  # fmt: skip


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            os.killpg(proc.pid, sig)


def stop_nodes(procs: list[subprocess.Popen], grace_s: float = 10.0) -> list[str]:
    """SIGINT every node (a clean ROS shutdown), then SIGKILL what is still running ``grace_s`` after
    the SIGINT: one deadline for all, so stopping never takes longer than ``grace_s`` however many
    nodes there are. Returns one line per node saying how it stopped (a launcher prints them)."""
    started = time.monotonic()
    for proc in procs:
        _signal_group(proc, signal.SIGINT)
    report = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, started + grace_s - time.monotonic()))
            report.append(f"{node_label(proc)} stopped {time.monotonic() - started:.1f} s after SIGINT")
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
            report.append(f"{node_label(proc)} was still running {grace_s:g} s after SIGINT: killed")
    return report


def node_label(proc: subprocess.Popen) -> str:
    """'gen0_policy.ros.sim_node (pid 123)' for a ``python -m`` node, else its program."""
    args = [str(a) for a in proc.args] if isinstance(proc.args, (list, tuple)) else [str(proc.args)]
    name = args[args.index("-m") + 1] if "-m" in args[:-1] else args[0]
    return f"{name} (pid {proc.pid})"


def dead_node(procs: list[tuple[str, subprocess.Popen]]) -> str:
    """'' while all run, else a sentence naming the first that exited."""
    for name, proc in procs:
        if proc.poll() is not None:
            return f"{name} node exited with code {proc.returncode}"
    return ""


def check_checkpoint(args: argparse.Namespace) -> None:
    """Default to the shipped checkpoint; refuse one that does not exist."""
    args.checkpoint = args.checkpoint or str(shipped_checkpoint(args.embodiment))
    if not Path(args.checkpoint).exists():
        raise ConfigError(f"checkpoint {args.checkpoint} does not exist; train one with `gen0 train` first")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (systemd, docker) and SIGHUP (closed terminal) stop like Ctrl-C


def check_robot_and_task(args: argparse.Namespace) -> None:
    """Refuse an unknown embodiment or task in one line, before any node starts."""
    embodiment = load_embodiment(args.embodiment)
    if args.target == "sim" and args.task:
        if embodiment.sim.get("simulator") == "metaworld":
            from gen0_policy.sim.metaworld_env import task_name

            task_name(args.task)  # raises, naming the 50 tasks
            return
        from gen0_policy.sim.tasks import task_class  # the sim's own list; `bringup policy` never loads it

        task_class(args.task, args.embodiment)


def run(args: argparse.Namespace) -> int:
    check_robot_and_task(args)
    check_checkpoint(args)
    if args.print_only:
        for _, command in commands(args):
            print(" ".join(command))
        return 0
    procs: list[tuple[str, subprocess.Popen]] = []
    # SIGINT too, even where it was ignored: a shell starts background jobs (`gen0 bringup sim &`) with
    # SIGINT ignored, and `kill -INT` then left the launcher and both nodes running.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    code = 0
    try:
        for name, command in commands(args):
            procs.append((name, start_node(command)))
        while time.monotonic() < deadline:
            dead = dead_node(procs)
            if dead:
                print(f"error: {dead}; stopping the others", file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("stopping the nodes", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not abandon the nodes half-stopped
        for line in stop_nodes([proc for _, proc in procs]):
            print(line, file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bringup", help="start the sim and policy nodes as separate processes")
    parser.add_argument("target", choices=("sim", "policy"), help="sim: MuJoCo sim + policy; policy: policy alone")
    parser.add_argument("--embodiment", default="panda", help="config/embodiments/<name>.yaml")
    parser.add_argument("--task", default="", help="sim task (gen0 sim info lists them); '' = the first")
    parser.add_argument(
        "--checkpoint", default="", help="checkpoint folder or training run folder (default: the shipped one)"
    )
    parser.add_argument(
        "--mode", choices=("synchronous", "harmonic"), default="synchronous", help="see config/policy_node.yaml"
    )
    parser.add_argument("--instruction", default="", help="override the task's instruction")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sim's first episode")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
    parser.add_argument("--param", action="append", default=[], help="extra policy parameter NAME:=VALUE")
    parser.add_argument("--policy-params", default="", help="policy parameter file (default config/policy_node.yaml)")
    parser.add_argument("--sim-params", default="", help="sim parameter file (default config/sim_node.yaml)")
    parser.add_argument("--print-only", action="store_true", help="print the node commands, start nothing")
    parser.set_defaults(func=run)
