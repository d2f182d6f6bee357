"""Health flags and meters: each set and cleared where the docstrings say, numbers averaged as stated."""

from __future__ import annotations

import time

import pytest

from gen0_policy.runtime.health import Health, Meters


def test_an_inference_is_busy_only_while_it_runs_even_when_it_raises() -> None:
    health = Health()
    assert health.hung_for() == 0.0
    with health.inferring():
        time.sleep(0.02)
        assert health.hung_for() >= 0.02
    assert health.busy_since is None
    with pytest.raises(RuntimeError), health.inferring():
        raise RuntimeError("policy crashed")
    assert health.hung_for() == 0.0


def test_a_confident_chunk_clears_errors_and_the_restart_an_uncertain_one_keeps_the_restart() -> None:
    health = Health(chunk_error="bad chunk", restart_reason="clock jumped")
    health.chunk(uncertain=True)
    assert (health.chunk_error, health.uncertain, health.restart_reason) == ("", True, "clock jumped")
    health.chunk(uncertain=False)
    assert (health.uncertain, health.restart_reason) == (False, "")


def test_meters_average_periods_and_latencies() -> None:
    meters = Meters()
    assert meters.control_rate == 0.0
    for now in (0.0, 0.01, 0.02, 0.02, 0.05):  # a repeated stamp is no period; a late tick weighs 0.1
        meters.tick(now)
    assert meters.period_estimate == pytest.approx(0.9 * 0.01 + 0.1 * 0.03)
    assert meters.control_rate == pytest.approx(1 / meters.period_estimate)
    meters.inference(latency=0.2, wall_latency=0.15, observation_age=0.01, alpha=0.5)
    meters.inference(latency=0.1, wall_latency=0.08, observation_age=0.02, alpha=0.5)
    assert meters.latency_estimate == pytest.approx(0.15)  # the first sets it, then the EMA
    assert (meters.inference_latency, meters.observation_age) == (0.08, 0.02)


def test_a_dying_worker_leaves_its_reason_a_returning_one_none() -> None:
    health = Health()
    health.watch(lambda: None)()
    assert health.worker_error == ""

    def crash() -> None:
        raise ZeroDivisionError("division by zero")

    health.watch(crash)()  # does not raise: the thread ends, the supervisor reports it
    assert health.worker_error == "inference worker died: ZeroDivisionError: division by zero"
