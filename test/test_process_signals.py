"""Process hygiene: SIGINT (Ctrl-C), SIGTERM (systemd, docker) and SIGKILL of the launcher and of each
node stop it, and leave nothing of ours running. Before issue 13, SIGTERM to `gen0 bringup` exited at
once and orphaned both nodes under init, and the policy node died of SIGTERM without stopping its
runtime."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_ros_policy_node import make_checkpoint

from conftest import processes_of_test, wait_until

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint") / "a", "signals")


def assert_nothing_left(test_id: str, timeout: float = 20.0, output: Callable[[], str] = str) -> None:
    """Every process of the test gone within ``timeout``; else which are left, and ``output()`` (the
    launcher says how long each node took to stop)."""
    try:
        wait_until(lambda: not processes_of_test(test_id), timeout, what="every process of the test to exit")
    except AssertionError:
        raise AssertionError(f"left running: {processes_of_test(test_id)}\n{output()}") from None


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_to_bringup_stops_both_nodes(processes, no_process_left_behind, checkpoint, sig) -> None:
    bringup = processes.python(
        "-m", "gen0_policy.cli", "bringup", "sim", "--embodiment", "panda", "--task", "reach",
        "--checkpoint", str(checkpoint), name="bringup",
    )  # fmt: skip
    wait_until(lambda: "configured panda" in processes.output(bringup), 120, what="both nodes up")
    nodes = processes_of_test(no_process_left_behind)
    assert sum("sim_node" in c for c in nodes.values()) == 1 and sum("policy_node" in c for c in nodes.values()) == 1
    bringup.send_signal(sig)  # to the launcher alone, as docker and a supervisor's main-PID kill do
    assert_nothing_left(no_process_left_behind, output=lambda: processes.output(bringup))
    bringup.wait(timeout=10)
    if sig != signal.SIGKILL:
        assert bringup.returncode == 0, processes.output(bringup)
        assert re.search(r"sim_node \(pid \d+\) stopped [\d.]+ s after SIGINT", processes.output(bringup))


def test_bringup_started_with_sigint_ignored_still_stops_on_sigint(
    processes, no_process_left_behind, checkpoint
) -> None:
    """`gen0 bringup sim &` from a script runs with SIGINT ignored; `kill -INT` left all three running."""
    argv = ["gen0", "bringup", "sim", "--embodiment", "panda", "--task", "reach", "--checkpoint", str(checkpoint)]
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"sys.argv = {argv!r}; from gen0_policy.cli import main; sys.exit(main())"
    )
    bringup = processes.python("-c", code, name="bringup")
    wait_until(lambda: "configured panda" in processes.output(bringup), 120, what="both nodes up")
    bringup.send_signal(signal.SIGINT)
    assert_nothing_left(no_process_left_behind, output=lambda: processes.output(bringup))
    assert bringup.wait(timeout=10) == 0, processes.output(bringup)


NODES = {
    "policy": (["gen0_policy.ros.policy_node", "--params-file", "config/policy_node.yaml"], "configured panda"),
    "sim": (["gen0_policy.ros.sim_node", "--params-file", "config/sim_node.yaml", "-p", "task:=reach"], "simulating"),
    "recorder": (["gen0_policy.ros.recorder_node", "-p", "output_dir:={tmp}", "-p", "embodiment:=panda"], "recording"),
    "leader_mirror": (["gen0_policy.ros.leader_mirror_node"], "mirroring"),
}


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("node", list(NODES))
def test_a_signal_to_a_node_stops_it_cleanly(processes, no_process_left_behind, checkpoint, tmp_path, node, sig):
    (module, *params), ready = NODES[node]
    params = [p.format(tmp=tmp_path) for p in params]
    if node == "policy":
        params += ["-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true"]  # after the file: they win
    proc = processes.python("-m", module, "--ros-args", *params, name=node)
    wait_until(lambda: ready in processes.output(proc) or proc.poll() is not None, 90, what=f"{node} up")
    assert proc.poll() is None, processes.output(proc)
    time.sleep(0.5)  # running, not just started
    proc.send_signal(sig)
    assert_nothing_left(no_process_left_behind)
    proc.wait(timeout=5)
    expected = -signal.SIGKILL if sig == signal.SIGKILL else 0
    assert proc.returncode == expected, processes.output(proc)
    assert "Traceback" not in processes.output(proc)


def test_a_policy_node_started_with_sigint_ignored_still_stops_on_sigint(
    processes, no_process_left_behind, checkpoint
) -> None:
    """A shell starts background jobs with SIGINT ignored and Python keeps it so: `kill -INT` (what ros2
    launch sends) did nothing to the policy node, which handles signals itself, unlike rclpy's default."""
    (module, *params), ready = NODES["policy"]
    argv = [module, "--ros-args", *params, "-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true"]
    code = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"sys.argv = {argv!r}; runpy.run_module({module!r}, run_name='__main__')"
    )
    proc = processes.python("-c", code, name="policy")
    wait_until(lambda: ready in processes.output(proc) or proc.poll() is not None, 90, what="policy up")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert_nothing_left(no_process_left_behind)
    assert proc.wait(timeout=5) == 0, processes.output(proc)


@pytest.mark.parametrize("node", ["sim", "policy"])
def test_sigusr1_prints_every_threads_stack_and_the_node_runs_on(processes, no_process_left_behind, checkpoint, node):
    """How a hung node shows where it waits (the closed-loop benchmark and the tests ask for it on a stall).
    A burst of them: faulthandler's own handler, which walked the threads' frames while they ran, killed
    the sim node (SIGSEGV) in 2 runs of 3 of 200 signals at 20 Hz."""
    (module, *params), ready = NODES[node]
    if node == "policy":
        params += ["-p", f"checkpoint:={checkpoint}", "-p", "autostart:=true"]
    proc = processes.python("-m", module, "--ros-args", *params, name=node)
    wait_until(lambda: ready in processes.output(proc) or proc.poll() is not None, 90, what=f"{node} up")
    time.sleep(1.0)  # spinning: the handler is registered before the executor spins
    for _ in range(100):
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.05)
    wait_until(lambda: "most recent call first" in processes.output(proc), 20, what="the stacks")
    assert proc.poll() is None, processes.output(proc)[-2000:]
    first_dump = processes.output(proc).split("Current thread")[0]  # printed by the dumping thread, last
    assert first_dump.count("Thread 0x") >= 2  # the executor's and the physics (or worker) thread
    proc.send_signal(signal.SIGINT)
    assert_nothing_left(no_process_left_behind)
    assert proc.wait(timeout=5) == 0


def test_the_leftover_check_sees_a_process_of_this_test_only_while_it_runs(no_process_left_behind) -> None:
    """The enforcer itself: test/conftest.py fails any test whose processes outlive it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        wait_until(lambda: proc.pid in processes_of_test(no_process_left_behind), 5, what="the sleeper")
        assert proc.pid not in processes_of_test("some-other-test")
    finally:
        proc.kill()
        proc.wait()
    assert proc.pid not in processes_of_test(no_process_left_behind)
