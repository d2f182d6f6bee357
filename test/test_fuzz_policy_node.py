"""Hypothesis fuzzing of a real policy node process on sim time (test/fuzzing.py has the attacks and the
oracles): every subscribed topic, service, the run_task action, parameters and lifecycle transitions.
After each round of attacks the node must be alive with every command finite, inside the limits and
within the velocity limit; after all of them, good input must bring it back to running. Short by
design (GEN0_FUZZ_SECONDS per family); benchmarks/fuzz_benchmark.py runs the long version."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from fuzzing import (
    DEFAULTS,
    Attacker,
    Oracle,
    action_attacks,
    lifecycle_attacks,
    parameter_attacks,
    service_attacks,
    topic_attacks,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_ros_policy_node import Probe, make_checkpoint

import conftest
from gen0_msgs.msg import PolicyStatus

pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

SECONDS = float(os.environ.get("GEN0_FUZZ_SECONDS", "5"))  # of attacks per family (~50 s in all with the start)


def checkpoints(root: Path) -> dict[str, str]:
    good, other = make_checkpoint(root / "a", "first"), make_checkpoint(root / "b", "second")
    looping = shutil.copytree(good, root / "looping")
    (looping / "latest").write_text(".")  # a run folder whose latest names itself
    return {"good": str(good), "other": str(other), "self_latest": str(looping)}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """One node for the module (starting one takes seconds); its own domain id, set while it starts."""
    root = tmp_path_factory.mktemp("fuzz")
    paths = checkpoints(root)
    saved = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(next(conftest._domain_ids))
    procs = conftest.Processes(root)
    try:
        policy = procs.python(
            "-m", "gen0_policy.ros.policy_node", "--ros-args", "--params-file", "config/policy_node.yaml",
            "-p", f"checkpoint:={paths['good']}", "-p", "use_sim_time:=true", "-p", "max_observation_age:=0.3",
            "-p", "autostart:=true", name="policy",
        )  # fmt: skip
        probe = Probe()
        oracle = Oracle()
        attacker = Attacker(probe, oracle, paths)
        probe.status(PolicyStatus.STATE_RUNNING, timeout=120)
        attacker.warm_up()
        yield attacker, oracle, policy
        probe.close()
    finally:
        procs.stop_all()
        procs.print_logs()
        if saved is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = saved


def fuzz(fuzzed, attacks: st.SearchStrategy) -> None:
    attacker, oracle, policy = fuzzed
    deadline = time.monotonic() + SECONDS

    @settings(
        max_examples=300, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(attacks, min_size=1, max_size=6))
    def attack(batch: list[tuple]) -> None:
        if time.monotonic() > deadline:
            return
        for one in batch:
            attacker.apply(one)
        time.sleep(0.02)
        assert policy.poll() is None, "the node died"
        assert not oracle.violations, oracle.violations

    attack()
    attacker.settle()
    assert policy.poll() is None, "the node died"
    attacker.recover({**DEFAULTS, "checkpoint": attacker.checkpoints["good"]})
    assert not oracle.violations, oracle.violations
    assert oracle.max_status_gap < 2.0  # 1 s in the benchmark; a 2-core CI machine under fuzzing needs slack
    print(oracle.counts, f"fastest command {oracle.max_speed_ratio:.3f}x the velocity limit")


def test_fuzz_topics(fuzzed) -> None:
    fuzz(fuzzed, topic_attacks)


def test_fuzz_services_and_run_task(fuzzed) -> None:
    fuzz(fuzzed, st.one_of(service_attacks, action_attacks))


def test_fuzz_parameters_and_lifecycle(fuzzed) -> None:
    fuzz(fuzzed, st.one_of(parameter_attacks, lifecycle_attacks, topic_attacks))
