"""The uncertainty bookkeeping: the signals from successive chunks (on a really trained tiny model
too), AUROC against its definition, precision/recall, lead time, the calibrated threshold's
false-hold rate, and the calibration file's round trip into a RuntimeConfig."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from model_fixtures import make_embodiment, make_episodes

from gen0_policy.errors import ConfigError
from gen0_policy.images import model_image
from gen0_policy.model.novelty import ImageNovelty
from gen0_policy.runtime import RuntimeConfig
from gen0_policy.runtime.uncertainty import (
    SIGNALS,
    Calibration,
    EpisodeTrace,
    SignalMonitor,
    auroc,
    calibrate_threshold,
    chunk_disagreement,
    precision_recall,
    roc_points,
)

torch.set_num_threads(1)


def brute_auroc(neg: list[float], pos: list[float]) -> float:
    """The definition: P(positive > negative) + P(tie) / 2 over all pairs."""
    pairs = list(itertools.product(neg, pos))
    return sum((p > n) + 0.5 * (p == n) for n, p in pairs) / len(pairs)


def test_auroc_is_the_pairwise_probability_with_ties_halved() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        neg = list(rng.integers(0, 6, rng.integers(1, 12)).astype(float))  # small integers: many ties
        pos = list(rng.integers(0, 6, rng.integers(1, 12)).astype(float))
        assert auroc(neg, pos) == pytest.approx(brute_auroc(neg, pos))
        fpr, tpr = roc_points(neg, pos)
        assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(neg, pos))  # the curve's area is the AUROC
    assert auroc([0.1, 0.2], [0.3, 0.4]) == 1.0 and auroc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert auroc([1.0, math.nan], [2.0]) == 1.0  # unmeasured episodes are dropped
    assert math.isnan(auroc([], [1.0])) and math.isnan(auroc([math.nan], [1.0]))


def test_auroc_agrees_with_sklearn_when_it_is_installed() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    neg, pos = rng.normal(0, 1, 40), rng.normal(0.7, 1, 30)
    labels = np.r_[np.zeros(40), np.ones(30)]
    assert auroc(neg, pos) == pytest.approx(metrics.roc_auc_score(labels, np.r_[neg, pos]))


def test_precision_recall_count_scores_strictly_above_the_threshold() -> None:
    pr = precision_recall([0.1, 0.2, 0.5], [0.4, 0.6, 0.5, 0.05], threshold=0.45)
    assert (pr["true_positives"], pr["false_positives"]) == (2, 1)
    assert pr["precision"] == pytest.approx(2 / 3) and pr["recall"] == pytest.approx(0.5)
    assert pr["false_positive_rate"] == pytest.approx(1 / 3)
    assert math.isnan(precision_recall([0.1], [0.2], 1.0)["precision"])  # nothing flagged


def trace(success: bool, values: list[float], condition: str = "in_distribution", seed: int = 0) -> EpisodeTrace:
    t = EpisodeTrace(condition, "reach", seed, success, duration=0.6 * len(values))
    for i, v in enumerate(values):
        t.add(0.6 * i, {"sample_spread": v, "chunk_disagreement": math.nan if i == 0 else v / 10})
    return t


def test_episode_trace_scores_crossings_lead_time_and_json_round_trip() -> None:
    t = trace(False, [0.1, 0.2, 0.5, 0.3])
    assert t.score("sample_spread") == pytest.approx(0.275) and t.score("sample_spread", "max") == 0.5
    assert t.score("chunk_disagreement") == pytest.approx(1 / 30)  # the unmeasured first chunk is skipped
    assert math.isnan(t.score("near_spread"))
    assert t.first_crossing("sample_spread", 0.25) == pytest.approx(1.2)
    assert t.lead_time("sample_spread", 0.25) == pytest.approx(2.4 - 1.2)  # before the time-out
    assert t.lead_time("sample_spread", 0.9) is None
    t.add(3.0, {"sample_spread": 0.1})  # a signal missing at one inference stays aligned as NaN
    assert len(t.signals["chunk_disagreement"]) == len(t.times) and math.isnan(t.signals["chunk_disagreement"][-1])
    back = EpisodeTrace.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back.times == t.times and back.success is False
    np.testing.assert_allclose(back.values("chunk_disagreement"), t.values("chunk_disagreement"))
    with pytest.raises(ConfigError, match="mean"):
        t.score("sample_spread", "median")


def test_calibrated_threshold_holds_in_at_most_the_target_share_of_good_episodes() -> None:
    rng = np.random.default_rng(2)
    good = [trace(True, list(rng.uniform(0, 1, 5)), seed=i) for i in range(40)]
    bad = [trace(False, [5.0])]  # failures never move the threshold
    for rate in (0.0, 0.1, 0.25):
        threshold = calibrate_threshold(good + bad, "sample_spread", rate)
        held = np.mean([t.score("sample_spread", "max") > threshold for t in good])
        assert held <= rate
        assert np.mean([t.score("sample_spread", "max") >= threshold for t in good]) > rate  # and no higher
    with pytest.raises(ConfigError, match="successful"):
        calibrate_threshold(bad, "sample_spread", 0.1)
    with pytest.raises(ConfigError, match="false_hold_rate"):
        calibrate_threshold(good, "sample_spread", 1.0)


def test_chunk_disagreement_compares_the_rows_both_chunks_cover() -> None:
    scale = np.array([2.0, 4.0])
    previous = np.stack([np.arange(8.0), np.zeros(8)], axis=1)  # joint 0 moves 1 per step
    same = chunk_disagreement(previous, 0.0, previous[3:] + 0.0, 0.3, 0.1, scale)
    assert same == pytest.approx(0.0, abs=1e-12)  # a chunk that continues the plan agrees with it
    shifted = np.stack([np.arange(3.0, 11.0), np.full(8, 0.4)], axis=1)
    assert chunk_disagreement(previous, 0.0, shifted, 0.3, 0.1, scale) == pytest.approx((0 + 0.4 / 4) / 2)
    half_step = chunk_disagreement(previous, 0.0, np.stack([np.arange(8.0) + 0.5, np.zeros(8)], 1), 0.05, 0.1, scale)
    assert half_step == pytest.approx(0.0, abs=1e-12)  # interpolated between the previous chunk's rows
    assert math.isnan(chunk_disagreement(previous, 0.0, previous, 5.0, 0.1, scale))  # no overlap
    moved = shifted.copy()
    moved[:2, 1] = 0.0  # committed rows are skipped
    assert chunk_disagreement(previous, 0.0, moved, 0.3, 0.1, scale, skip=2) == pytest.approx(0.05)


def test_after_a_hold_the_unexecuted_plan_is_compared_from_where_it_would_have_started() -> None:
    """Held, the robot did not follow the last chunk; the next one (planned from the same place a step
    later) must not look a step behind it, or a hold on disagreement would never end."""
    monitor = SignalMonitor(np.array([1.0]))
    plan = {"actions": np.arange(8.0)[:, None] * 0.1}
    monitor.update(plan, 0.0, 0.1)
    late = monitor.update(plan, 0.1, 0.1)["chunk_disagreement"]  # the same plan a step later: behind by 0.1
    assert late == pytest.approx(0.1)
    monitor.held()
    assert monitor.update(plan, 0.2, 0.1)["chunk_disagreement"] == pytest.approx(0.0)
    assert monitor.update(plan, 0.3, 0.1)["chunk_disagreement"] == pytest.approx(0.1)  # executed again


def test_calibration_file_round_trip_and_applied_to_the_runtime_config(tmp_path: Path) -> None:
    path = Calibration("near_spread", 0.02, num_samples=8, false_hold_rate=0.1, checkpoint_id="ck").save(
        tmp_path / "cal" / "c.json"
    )
    calibration = Calibration.load(path)
    assert calibration == Calibration("near_spread", 0.02, 8, 0.1, "ck")
    config = calibration.apply(RuntimeConfig(num_samples=2, uncertainty_threshold=5.0))
    assert (config.uncertainty_signal, config.uncertainty_threshold, config.num_samples) == ("near_spread", 0.02, 8)
    one = Calibration("chunk_disagreement", 0.01).apply(RuntimeConfig(novelty_threshold=9.0))
    assert one.num_samples == 1 and one.uncertainty_signal == "chunk_disagreement"  # needs no samples
    assert one.novelty_threshold == 9.0  # not calibrated: the config's stays
    guarded = Calibration.load(Calibration("chunk_disagreement", 0.01, novelty_threshold=5.0).save(tmp_path / "g.json"))
    assert guarded.apply(RuntimeConfig()).novelty_threshold == 5.0
    for bad, match in (
        ({"signal": "vibes", "threshold": 0.1}, "available signals"),
        ({"signal": "sample_spread", "threshold": 0.1, "num_samples": 1}, "num_samples >= 2"),
        ({"signal": "sample_spread", "threshold": -1, "num_samples": 4}, "positive"),
        ({"threshold": 0.1}, "needs 'signal'"),
        ({"signal": "image_novelty", "threshold": 4.0, "novelty_threshold": -1}, "novelty_threshold"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=match):
            Calibration.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not readable JSON"):
        Calibration.load(tmp_path / "broken.json")
    with pytest.raises(ConfigError, match="does not exist"):
        Calibration.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="uncertainty_signal"):
        RuntimeConfig(uncertainty_signal="vibes")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    from gen0_policy.data.windows import MixtureSource
    from gen0_policy.model.policy import Gen0Policy
    from gen0_policy.train.config import TrainConfig
    from gen0_policy.train.loop import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    episodes = make_episodes("panda", 6)
    config = TrainConfig(
        out_dir=str(out), preset="test", model={"language_encoder": "hash"}, steps=40, batch_size=8, lr=2e-3,
        warmup_steps=5, val_every=40, save_every=40, log_every=40, precision="fp32", threads=1, progress=False,
    )  # fmt: skip
    train(config, [MixtureSource("panda", episodes)], [make_embodiment("panda")])
    return Gen0Policy.load(out, precision="fp32"), episodes


def test_signals_of_a_trained_tiny_model_over_an_episode(tiny) -> None:
    """The benchmark's bookkeeping on real inference: every signal per chunk, the disagreement from
    the second chunk on, the sample spread the policy's own, and a score per episode."""
    policy, episodes = tiny
    embodiment = make_embodiment("panda")
    monitor = SignalMonitor(embodiment.upper - embodiment.lower)
    ep = episodes[0]
    frames = {cam: np.concatenate([e.images[cam] for e in episodes]) for cam in ep.images}
    pixels = {cam: torch.from_numpy(model_image(f, policy.config.image_size)) for cam, f in frames.items()}
    policy.novelty = ImageNovelty.fit(
        {f"panda/{cam}": policy.model.vision.describe(p[:, None])[:, 0].numpy() for cam, p in pixels.items()}
    )  # what `gen0 model novelty` fits from the training data (test_model_novelty.py)
    record = EpisodeTrace("in_distribution", "reach", 0, success=True, duration=len(ep.states) * policy.step_dt)
    for t in range(0, len(ep.states), 6):
        obs = {
            "embodiment": "panda",
            "instruction": ep.instruction,
            "joint_positions": ep.states[t],
            "images": {cam: frames[t] for cam, frames in ep.images.items()},
        }
        out = policy.infer(obs, num_samples=4)
        values = monitor.update(out, t * policy.step_dt, policy.step_dt)
        assert set(values) == set(SIGNALS) and values["sample_spread"] == out["uncertainty"]
        record.add(t * policy.step_dt, values)
    assert len(record.times) == 4
    assert math.isnan(record.signals["chunk_disagreement"][0])  # nothing to compare the first chunk with
    for name in SIGNALS:
        assert 0 < record.score(name) < 5, name
    monitor.reset()
    assert math.isnan(monitor.update(out, 0.0, policy.step_dt)["chunk_disagreement"])
    single = monitor.update(policy.infer(obs), 0.1, policy.step_dt)  # one sample: only the disagreement
    assert math.isnan(single["sample_spread"]) and math.isnan(single["near_spread"])
    assert math.isfinite(single["chunk_disagreement"])


def test_the_shipped_calibration_loads() -> None:
    from conftest import REPO

    calibration = Calibration.load(REPO / "config" / "uncertainty" / "multitask_cpu.json")
    assert calibration.signal in SIGNALS and 0 < calibration.threshold < 1
    # measured on the committed checkpoint, not an earlier one (a new checkpoint needs a new calibration)
    shipped = json.loads((REPO / "checkpoints" / "multitask_cpu" / "config.json").read_text())["checkpoint_id"]
    assert calibration.mismatch(shipped) == ""


def test_a_calibration_from_another_checkpoint_says_so() -> None:
    calibration = Calibration("chunk_disagreement", 0.01, checkpoint_id="run-step0000100-aaaaaaaa")
    assert calibration.mismatch("run-step0000100-aaaaaaaa") == ""
    assert "measured on checkpoint run-step0000100-aaaaaaaa" in calibration.mismatch("run-step0000200-bbbbbbbb")
    assert Calibration("chunk_disagreement", 0.01).mismatch("anything") == ""  # it does not say
