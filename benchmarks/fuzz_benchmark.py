"""Fuzz benchmark: `gen0 bringup sim` (MuJoCo sim node + policy node, sim time) under hypothesis-drawn
attacks on every topic, service, the run_task action, parameters and lifecycle transitions, for
``--seconds``. The attacks and oracles are test/fuzzing.py's. Prints one JSON object: attacks by kind,
requests, crashes, hangs (requests never answered), violations (non-finite, out-of-limit or over-speed
commands, holds without a reason), the fastest command as a multiple of the velocity limit, the longest
status gap, and recovery times (s from the end of a topic attack to running again).

    ROS_DOMAIN_ID=77 .venv/bin/python benchmarks/fuzz_benchmark.py --seconds 300
The targets (issue 13): 0 crashes, 0 hangs, 0 violations, status gaps < 1 s, recovery < 0.5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test"))  # the attacks and oracles live with the fuzz tests
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "77")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402 - after the environment above
from fuzzing import DEFAULTS, Attacker, Listener, Oracle, any_attack, topic_attacks  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gen0_msgs.msg import PolicyStatus  # noqa: E402
from gen0_policy.bringup import die_with_parent  # noqa: E402

TOPIC_KINDS = {"joints", "image", "task", "clock"}
IDLE, FAULT = PolicyStatus.STATE_IDLE, PolicyStatus.STATE_FAULT


def read_watch(watch: subprocess.Popen) -> tuple[dict, str]:
    """Stop benchmarks/status_watch.py and read its JSON. A watcher slow to tear rclpy down after it
    printed is killed, and what it printed is still read (a timeout used to discard it: once in three
    runs the outside judgment was missing); an empty or broken summary says why instead."""
    watch.send_signal(signal.SIGINT)
    try:
        out = watch.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        watch.kill()
        out = watch.communicate()[0]
    try:
        return json.loads(out), ""
    except json.JSONDecodeError:
        return {}, f"status_watch.py exited {watch.returncode} with {len(out or '')} characters of output"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="attack time")
    parser.add_argument("--checkpoint", default="", help="checkpoint folder ('' = a tiny untrained one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from test_ros_policy_node import make_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="gen0_fuzz_"))
    good = Path(args.checkpoint) if args.checkpoint else make_checkpoint(tmp / "a", "first")
    other = make_checkpoint(tmp / "b", "second")
    looping = tmp / "looping"
    looping.mkdir()
    (looping / "latest").write_text(".")
    paths = {"good": str(good), "other": str(other), "self_latest": str(looping)}
    defaults = {**DEFAULTS, "checkpoint": str(good), "max_observation_age": 0.5}  # as bringup starts it
    log = (tmp / "bringup.log").open("w")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stopped from outside: still stop bringup
    parent = os.getpid()
    bringup = subprocess.Popen(
        [sys.executable, "-m", "gen0_policy.cli", "bringup", "sim", "--task", "reach", "--checkpoint", str(good)],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        preexec_fn=lambda: die_with_parent(parent),
    )  # fmt: skip
    watch = subprocess.Popen(  # gaps as a process that does nothing else sees them (not the busy attacker)
        [sys.executable, str(REPO / "benchmarks" / "status_watch.py"), "--arrivals"],
        stdout=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=lambda: die_with_parent(parent),
    )  # fmt: skip
    listener, oracle = Listener(), Oracle()
    attacker = Attacker(listener, oracle, paths)
    recoveries: list[float] = []
    slow: list[tuple] = []  # recoveries over 0.5 s: seconds, the batch's attack kinds, the hold's reason
    crashed, final_recovery = "", ""
    ended_tasks = 0  # topic batches after which the node rightly rested: a TaskStatus success ended its goal
    try:
        listener.status(PolicyStatus.STATE_RUNNING, timeout=180)
        attacker.warm_up()
        oracle.max_status_gap = 0.0  # judged from here on
        judged_from = time.monotonic()
        deadline = time.monotonic() + args.seconds

        @settings(
            max_examples=25, deadline=None, database=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(st.one_of(st.lists(topic_attacks, min_size=1, max_size=10), st.lists(any_attack, max_size=4)))
        def attack(batch: list[tuple]) -> None:
            nonlocal crashed, ended_tasks
            if time.monotonic() > deadline or crashed:
                return
            topics_only = bool(batch) and all(a[0] in TOPIC_KINDS for a in batch)
            if topics_only and listener.statuses and listener.statuses[-1].state in (IDLE, FAULT):
                with contextlib.suppress(AssertionError):  # recovery is judged from a node that was acting
                    attacker.recover(defaults, timeout=10.0)
            for one in batch:
                attacker.apply(one)
            if bringup.poll() is not None:
                crashed = f"bringup exited with {bringup.returncode}"
                return
            if topics_only:
                ended = time.monotonic()
                try:
                    listener.status(PolicyStatus.STATE_RUNNING, timeout=5.0)
                    recoveries.append(time.monotonic() - ended)
                except AssertionError:
                    last = listener.statuses[-1]
                    if last.state == IDLE and "waiting for the next run_task goal" in last.reason:
                        ended_tasks += 1  # a task attack ended a run_task goal: at rest until the next, as it should
                        return
                    recoveries.append(float("inf"))
                if recoveries[-1] > 0.5 and len(slow) < 10:
                    why = listener.statuses[-2].reason if len(listener.statuses) > 1 else ""
                    slow.append((round(recoveries[-1], 3), [a[0] for a in batch], why))
            else:
                time.sleep(0.1)  # a transition's new state reaches the status before the next batch looks

        rounds = 0
        while time.monotonic() < deadline and not crashed:
            hypothesis_seed(args.seed * 100_003 + rounds)(attack)()  # 25 examples a round, a new seed each
            rounds += 1
        attacker.settle()
        if not crashed:
            try:
                final_recovery = f"{attacker.recover(defaults, timeout=30.0):.3f} s"
            except AssertionError as exc:
                final_recovery = f"failed: {exc}"
    finally:
        if bringup.poll() is None:
            os.killpg(bringup.pid, signal.SIGINT)
        try:
            bringup.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(bringup.pid, signal.SIGKILL)
        listener.close()
        watched, watch_error = read_watch(watch)
    arrivals = [t for t, _ in watched.get("arrivals", []) if t >= judged_from]
    outside = sorted(((b - a, b) for a, b in itertools.pairwise(arrivals)), reverse=True)[:5]
    hangs = sum(v.endswith("never answered") for v in oracle.violations)
    finite = [r for r in recoveries if np.isfinite(r)]
    print(
        json.dumps(
            {
                "seconds": args.seconds,
                "attacks": {k[len("attack_") :]: v for k, v in oracle.counts.items() if k.startswith("attack_")},
                "requests": oracle.counts.get("requests", 0),
                "commands": oracle.counts.get("commands", 0),
                "crashes": int(bool(crashed)),
                "crash": crashed,
                "hangs": hangs,
                "violations": oracle.counts.get("violations", 0) - hangs,
                "violation_examples": oracle.violations[:10],
                "max_speed_ratio": round(oracle.max_speed_ratio, 3),
                "max_acceleration_ratio": round(oracle.max_acceleration_ratio, 3),
                "max_status_gap_s": round(oracle.max_status_gap, 3),  # as the (busy) attacking client sees it
                # as benchmarks/status_watch.py sees it: a process subscribed to the status alone
                "max_status_gap_outside_s": round(outside[0][0], 3) if outside else None,
                "longest_status_gaps_outside": [[round(g, 3), round(end - judged_from, 2)] for g, end in outside],
                "status_watch_error": watch_error,  # why there is no outside judgment, if there is none
                "longest_status_gaps": [  # what happened in each window: the gap's cause
                    {
                        "gap_s": round(g, 3),
                        "ended_s": round(end - judged_from, 2),  # after judging began
                        "states": [before, after],
                        "status_rate_set": attacker.status_rate_before(end - g),
                        "attacks": attacker.around(end - g - 0.5, end),
                    }
                    for g, end, before, after in oracle.status_gaps
                ],
                "recoveries": len(recoveries),
                "recoveries_not_within_5_s": len(recoveries) - len(finite),
                "batches_that_ended_a_task": ended_tasks,
                "recovery_p50_s": round(float(np.median(finite)), 3) if finite else None,
                "recovery_max_s": round(max(finite), 3) if finite else None,
                "slow_recoveries": slow,
                "final_recovery": final_recovery,  # good parameters and input, reconfigured, until running
                "log": str(log.name),
            }
        )
    )


if __name__ == "__main__":
    main()
