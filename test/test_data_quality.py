"""Per-episode quality numbers: rates, gaps and dropped messages of a stream, stale matches, NaNs."""

from __future__ import annotations

import numpy as np
import pytest

from gen0_policy.data.quality import EpisodeQuality, StreamQuality


def test_regular_stream_has_its_rate_and_no_gaps() -> None:
    times = 100.0 + np.arange(200) / 100.0
    q = StreamQuality.from_times("/joint_states", np.random.default_rng(0).permutation(times), origin=99.5)
    assert q.count == 200 and q.rate_hz == pytest.approx(100.0)
    assert (q.gaps, q.dropped) == (0, 0) and q.max_gap_s == pytest.approx(0.01)
    assert q.first_s == pytest.approx(0.5) and q.last_s == pytest.approx(0.5 + 1.99)


def test_gaps_count_the_missing_messages() -> None:
    times = np.arange(100) / 30.0
    kept = np.delete(times, [10, 11, 12, 50])  # a 4-period gap (3 lost) and a 2-period one (1 lost)
    q = StreamQuality.from_times("/scene/image_raw", kept, origin=0.0)
    assert q.rate_hz == pytest.approx(30.0)
    # Only gaps longer than GAP_FACTOR (2.5) periods count: the 4-period one.
    assert (q.gaps, q.dropped) == (1, 3) and q.max_gap_s == pytest.approx(4 / 30)


def test_short_streams() -> None:
    one = StreamQuality.from_times("/x", np.array([5.0]), origin=4.0)
    assert (one.count, one.rate_hz, one.first_s) == (1, 0.0, 1.0)
    none = StreamQuality.from_times("/x", np.array([]), origin=0.0)
    assert none.count == 0 and np.isnan(none.first_s)


def test_episode_report_flags_stale_samples_gaps_and_nans() -> None:
    report = EpisodeQuality("ep0", steps=10, duration_s=1.0)
    steps = np.arange(10) / 10.0
    report.check_sync("/scene", steps, steps - 0.05, rate_hz=30.0)  # 50 ms old, period 33 ms: fine (< 2 periods)
    assert report.max_lag_s["/scene"] == pytest.approx(0.05) and not report.warnings
    report.check_sync("/wrist", steps, steps - 0.1, rate_hz=30.0)  # 3 periods old
    assert len(report.warnings) == 1 and "/wrist out of sync" in report.warnings[0]
    gappy = StreamQuality.from_times("/js", np.delete(np.arange(50) / 100.0, range(20, 26)), 0.0)
    report.check_stream(gappy)
    assert "6 messages dropped" in report.warnings[-1].replace("~", "")
    assert report.count_nans("state", np.array([1.0, np.nan, np.inf])) == 2 and report.nan_values == {"state": 2}
    assert report.ok and report.to_dict()["ok"] is True
    report.errors.append("no commands")
    assert not report.ok and report.summary_line().startswith("ERROR ep0: 10 steps")
    assert "error: no commands" in report.summary_line() and "warn: /wrist" in report.summary_line()
