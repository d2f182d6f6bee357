"""Per-episode data quality: gaps, dropped frames, out-of-sync streams and NaNs, as plain numbers.

A recorded demonstration can look fine and still teach the wrong thing: a camera that froze for
half a second, joint states that arrive in bursts, a command stream that starts late. The report
makes these visible per episode (printed by ``gen0 data build`` and saved beside the dataset).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

GAP_FACTOR = 2.5  # a gap longer than this many median periods counts as a gap (and as dropped messages)
SYNC_PERIODS = 2.0  # a matched sample older than this many of its stream's periods is out of sync


@dataclass
class StreamQuality:
    """Timing of one topic over an episode (times in s, from the bag's log times)."""

    topic: str
    count: int
    rate_hz: float  # median rate
    max_gap_s: float
    gaps: int  # gaps longer than GAP_FACTOR median periods
    dropped: int  # messages missing inside those gaps, at the median rate
    first_s: float  # first message, relative to the episode's first message
    last_s: float

    @classmethod
    def from_times(cls, topic: str, times: np.ndarray, origin: float) -> StreamQuality:
        times = np.sort(np.asarray(times, dtype=np.float64))
        if len(times) < 2:
            first = float(times[0] - origin) if len(times) else float("nan")
            return cls(topic, len(times), 0.0, 0.0, 0, 0, first, first)
        periods = np.diff(times)
        median = float(np.median(periods))
        if median <= 0:
            median = float(np.mean(periods)) or 1e-9
        long = periods > GAP_FACTOR * median
        dropped = int(np.sum(np.round(periods[long] / median) - 1))
        return cls(
            topic,
            len(times),
            1.0 / median,
            float(periods.max()),
            int(long.sum()),
            dropped,
            float(times[0] - origin),
            float(times[-1] - origin),
        )


@dataclass
class EpisodeQuality:
    """Everything found about one episode; ``errors`` make it unusable, ``warnings`` do not."""

    source: str
    steps: int = 0
    duration_s: float = 0.0
    streams: list[StreamQuality] = field(default_factory=list)
    max_lag_s: dict[str, float] = field(default_factory=dict)  # stream -> oldest sample used for a step
    nan_values: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def check_sync(self, stream: str, step_times: np.ndarray, sample_times: np.ndarray, rate_hz: float) -> None:
        """``sample_times[k]`` is when the sample used at step k was received; flag stale matches."""
        if len(step_times) == 0:
            return
        lag = float(np.max(step_times - sample_times))
        self.max_lag_s[stream] = lag
        if rate_hz > 0 and lag > SYNC_PERIODS / rate_hz + 1e-9:
            self.warnings.append(
                f"{stream} out of sync: a step used a sample {lag * 1000:.0f} ms old (stream period "
                f"{1000 / rate_hz:.0f} ms)"
            )

    def check_stream(self, stream: StreamQuality) -> None:
        self.streams.append(stream)
        if stream.gaps:
            self.warnings.append(
                f"{stream.topic}: {stream.gaps} gaps (longest {stream.max_gap_s * 1000:.0f} ms), "
                f"~{stream.dropped} messages dropped at {stream.rate_hz:.1f} Hz"
            )

    def count_nans(self, name: str, values: np.ndarray) -> int:
        bad = int(np.sum(~np.isfinite(values)))
        if bad:
            self.nan_values[name] = bad
        return bad

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def summary_line(self) -> str:
        status = "ERROR" if self.errors else ("warn " if self.warnings else "ok   ")
        rates = ", ".join(f"{s.topic} {s.rate_hz:.0f} Hz" for s in self.streams)
        line = f"{status} {self.source}: {self.steps} steps, {self.duration_s:.2f} s ({rates})"
        return "\n".join(
            [line, *(f"      error: {e}" for e in self.errors), *(f"      warn: {w}" for w in self.warnings)]
        )
