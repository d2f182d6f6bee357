"""Does the policy know when it does not know? The candidate signals, computed per inference from
successive chunks; the measures that say whether a signal predicts failure or distribution shift
(AUROC, precision/recall at a threshold, lead time); and the calibration file that carries a measured
threshold to the runtime.

Signals (all dimensionless, higher = less sure):
- ``sample_spread``: mean std of the flow-matching samples in normalized action units (the policy's
  own ``uncertainty``; needs ``num_samples >= 2``).
- ``near_spread``: the same spread over only the next quarter chunk (the part about to execute), in
  fractions of each joint's range; cheaper to trust than the far future, which is uncertain anyway.
- ``chunk_disagreement``: mean |difference| between this chunk and the previous one over the times
  both cover, in fractions of each joint's range. A policy that changes its mind every chunk is
  guessing; needs one sample only.
- ``image_novelty``: how far the cameras' pictures are from the training frames' (mean squared
  z-score of the vision features, model/novelty.py; about 1 in distribution). It measures the input,
  not the policy: a covered or blocked camera, a scene never trained in. Needs the checkpoint's
  ``novelty.json`` (``gen0 model novelty``).

A calibration file (JSON) names the signal and the threshold measured on successful in-distribution
episodes (``benchmarks/uncertainty_benchmark.py --calibration-out`` writes one); the runtime and the policy
node load it with :meth:`Calibration.load` and :meth:`Calibration.apply`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gen0_policy.errors import ConfigError

if TYPE_CHECKING:
    from gen0_policy.runtime.config import RuntimeConfig

SIGNALS = ("sample_spread", "near_spread", "chunk_disagreement", "image_novelty")
NEEDS_SAMPLES = ("sample_spread", "near_spread")  # signals that are NaN with one sample


# ----------------------------------------------------------------------------------- signals
def chunk_disagreement(
    previous: np.ndarray,
    previous_t0: float,
    current: np.ndarray,
    current_t0: float,
    step_dt: float,
    scale: np.ndarray,
    skip: int = 0,
) -> float:
    """Mean |current - previous| / scale over the rows of ``current`` (from row ``skip``: committed rows
    agree by construction) whose times the previous chunk also covers; row k of a chunk is the target
    at ``t0 + k * step_dt``. NaN when the chunks do not overlap."""
    previous, current = np.asarray(previous, np.float64), np.asarray(current, np.float64)
    times = current_t0 + np.arange(len(current)) * step_dt
    steps = (times - previous_t0) / step_dt  # fractional row of ``previous`` at each time
    rows = np.arange(len(current))
    inside = (rows >= skip) & (steps >= -1e-9) & (steps <= len(previous) - 1 + 1e-9)
    if not inside.any():
        return math.nan
    grid = np.arange(len(previous))
    then = np.stack([np.interp(steps[inside], grid, previous[:, j]) for j in range(previous.shape[1])], axis=1)
    return float((np.abs(current[inside] - then) / scale).mean())


class SignalMonitor:
    """Every candidate signal for each new chunk of one episode (or run), given the one before it.

    ``scale``: (D,) each joint's range (upper - lower), so joints of different units weigh alike."""

    def __init__(self, scale: np.ndarray) -> None:
        scale = np.asarray(scale, np.float64)
        if scale.ndim != 1 or not np.all(scale > 0):
            raise ConfigError(f"signal scale must be positive joint ranges, got {scale}")
        self.scale = scale
        self.reset()

    def reset(self) -> None:
        """Forget the previous chunk (a new episode, or a restart after which it no longer applies)."""
        self._previous: tuple[np.ndarray, float] | None = None
        self._held = False

    def held(self) -> None:
        """The last chunk was not executed (the robot held): the next one is compared with it as a
        plan that starts when the next one does. Compared at their own times instead, a held plan
        looks a step further behind at every inference, and a hold on disagreement never ends."""
        self._held = True

    def update(self, out: Mapping[str, Any], t0: float, step_dt: float, skip: int = 0) -> dict[str, float]:
        """Signals for ``out`` (an ``infer`` result: actions, uncertainty, optional samples) placed at
        ``t0``; ``skip`` rows were committed (known before inference), so they say nothing."""
        actions = np.asarray(out["actions"], np.float64)
        values = {name: math.nan for name in SIGNALS}
        spread = out.get("uncertainty")
        values["sample_spread"] = float(spread) if spread is not None else math.nan
        novelty = out.get("image_novelty")
        values["image_novelty"] = float(novelty) if novelty is not None else math.nan
        samples = out.get("samples")
        if samples is not None and len(samples) > 1:
            near = np.asarray(samples, np.float64)[:, skip : skip + max(1, len(actions) // 4)]
            values["near_spread"] = float((near.std(axis=0) / self.scale).mean()) if near.size else math.nan
        if self._previous is not None:
            previous, previous_t0 = self._previous
            previous_t0 = t0 if self._held else previous_t0
            values["chunk_disagreement"] = chunk_disagreement(
                previous, previous_t0, actions, t0, step_dt, self.scale, skip
            )
        self._previous, self._held = (actions, float(t0)), False
        return values


# ------------------------------------------------------------------------------ bookkeeping
@dataclass
class EpisodeTrace:
    """One episode: the signals at each inference, and how it ended."""

    condition: str  # "in_distribution", or the shift applied (e.g. "covered_camera")
    task: str
    seed: int
    success: bool = False
    duration: float = 0.0  # s of sim time until success or the time limit
    times: list[float] = field(default_factory=list)  # s, sim time of each inference
    signals: dict[str, list[float]] = field(default_factory=dict)  # name -> one value per inference

    def add(self, t: float, values: Mapping[str, float]) -> None:
        self.times.append(float(t))
        for name, value in values.items():
            self.signals.setdefault(name, [math.nan] * (len(self.times) - 1)).append(float(value))
        for trace in self.signals.values():  # a signal missing this time is NaN, keeping rows aligned
            if len(trace) < len(self.times):
                trace.append(math.nan)

    def values(self, signal: str) -> np.ndarray:
        return np.asarray(self.signals.get(signal, []), np.float64)

    def score(self, signal: str, how: str = "mean") -> float:
        """One number per episode: ``mean`` (independent of the episode's length, which differs between
        successes and time-outs by construction) or ``max`` (what a runtime that holds at the first
        crossing reacts to). NaN if the signal was never measured."""
        finite = self.values(signal)
        finite = finite[np.isfinite(finite)]
        if not finite.size:
            return math.nan
        if how == "mean":
            return float(finite.mean())
        if how == "max":
            return float(finite.max())
        raise ConfigError(f"episode score is 'mean' or 'max', got {how!r}")

    def first_crossing(self, signal: str, threshold: float) -> float | None:
        """Sim time of the first inference whose signal is above ``threshold`` (None: never)."""
        above = np.flatnonzero(self.values(signal) > threshold)  # NaN compares False
        return self.times[int(above[0])] if above.size else None

    def lead_time(self, signal: str, threshold: float) -> float | None:
        """s between the first crossing and the episode's end (its failure, for a failed one)."""
        t = self.first_crossing(signal, threshold)
        return None if t is None else self.duration - t

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["signals"] = {k: [_json_float(v) for v in vs] for k, vs in self.signals.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeTrace:
        """From :meth:`to_dict`'s output; other keys (a benchmark's extras) are ignored."""
        signals = {k: [math.nan if v is None else float(v) for v in vs] for k, vs in data.get("signals", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known} | {"signals": signals})


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def auroc(negatives: Iterable[float], positives: Iterable[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half): the
    Mann-Whitney U statistic over n_pos * n_neg, from average ranks. NaN scores are dropped; NaN if
    either side is empty."""
    neg = np.asarray([v for v in negatives if math.isfinite(v)], np.float64)
    pos = np.asarray([v for v in positives if math.isfinite(v)], np.float64)
    if not neg.size or not pos.size:
        return math.nan
    scores = np.concatenate([neg, pos])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[len(neg) :].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def roc_points(negatives: Iterable[float], positives: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) of every threshold, from (0, 0) to (1, 1); the
    trapezoid area under them equals :func:`auroc`."""
    neg = np.asarray([v for v in negatives if math.isfinite(v)], np.float64)
    pos = np.asarray([v for v in positives if math.isfinite(v)], np.float64)
    if not neg.size or not pos.size:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    fpr = np.array([0.0, *[(neg >= t).mean() for t in thresholds]])
    tpr = np.array([0.0, *[(pos >= t).mean() for t in thresholds]])
    return fpr, tpr


def precision_recall(negatives: Iterable[float], positives: Iterable[float], threshold: float) -> dict[str, float]:
    """Flagging every score above ``threshold``: precision, recall, and the false-positive rate."""
    neg = np.asarray([v for v in negatives if math.isfinite(v)], np.float64)
    pos = np.asarray([v for v in positives if math.isfinite(v)], np.float64)
    tp, fp = int((pos > threshold).sum()), int((neg > threshold).sum())
    return {
        "threshold": threshold,
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / len(pos) if len(pos) else math.nan,
        "false_positive_rate": fp / len(neg) if len(neg) else math.nan,
        "true_positives": tp,
        "false_positives": fp,
        "positives": len(pos),
        "negatives": len(neg),
    }


def calibrate_threshold(traces: Sequence[EpisodeTrace], signal: str, false_hold_rate: float) -> float:
    """The lowest threshold at which at most ``false_hold_rate`` of the successful episodes in
    ``traces`` would have held at least once (their maximum is above it). A runtime that holds at the
    first crossing then stops a good episode that often, and flags as much else as it can."""
    if not 0 <= false_hold_rate < 1:
        raise ConfigError(f"false_hold_rate must be in [0, 1), got {false_hold_rate}")
    peaks = sorted((s for t in traces if t.success and math.isfinite(s := t.score(signal, "max"))), reverse=True)
    if not peaks:
        raise ConfigError(f"no successful episode measured {signal!r}; calibrate on episodes that succeed")
    allowed = math.floor(false_hold_rate * len(peaks) + 1e-9)  # episodes that may hold
    return float(peaks[allowed]) if allowed < len(peaks) else float(peaks[-1])


# ------------------------------------------------------------------------------ calibration
@dataclass(frozen=True)
class Calibration:
    """A measured threshold for one signal, as the runtime should use it."""

    signal: str
    threshold: float
    num_samples: int = 1  # samples per inference the signal was measured with
    false_hold_rate: float = math.nan  # target fraction of successful episodes that hold at least once
    checkpoint_id: str = ""  # the checkpoint it was measured on: another one needs its own calibration
    notes: str = ""
    novelty_threshold: float = math.nan  # image_novelty above which to hold as well (NaN: not calibrated)

    def __post_init__(self) -> None:
        if self.signal not in SIGNALS:
            raise ConfigError(f"uncertainty signal {self.signal!r} is unknown; available signals are {SIGNALS}")
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ConfigError(f"calibrated threshold must be a positive number, got {self.threshold}")
        if self.signal in NEEDS_SAMPLES and self.num_samples < 2:
            raise ConfigError(f"signal {self.signal} needs num_samples >= 2, got {self.num_samples}")
        if not (math.isnan(self.novelty_threshold) or self.novelty_threshold > 0):
            raise ConfigError(f"calibrated novelty_threshold must be a positive number, got {self.novelty_threshold}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: _json_float(v) if isinstance(v, float) else v for k, v in dataclasses.asdict(self).items()}
        path.write_text(json.dumps(data, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read a calibration file; ConfigError says what is wrong with it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"uncertainty calibration {path} does not exist; write one with "
                              "benchmarks/uncertainty_benchmark.py --calibration-out") from exc  # fmt: skip
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"uncertainty calibration {path} is not readable JSON: {exc}") from exc
        known = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or "signal" not in data or "threshold" not in data:
            raise ConfigError(
                f"uncertainty calibration {path} needs 'signal' and 'threshold'; its fields are {sorted(known)}"
            )
        try:
            return cls(**{k: (math.nan if v is None else v) for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"uncertainty calibration {path}: {exc}") from exc

    def mismatch(self, checkpoint_id: str) -> str:
        """A warning when this calibration was measured on another checkpoint ("" when it was not, or
        when it does not say): a threshold is a property of one network's signal, not of the robot."""
        if not self.checkpoint_id or self.checkpoint_id == checkpoint_id:
            return ""
        return (
            f"uncertainty calibration measured on checkpoint {self.checkpoint_id}, running {checkpoint_id}: "
            "its threshold may hold too often or never; measure one with benchmarks/uncertainty_benchmark.py"
        )

    def apply(self, config: RuntimeConfig) -> RuntimeConfig:
        """``config`` using this signal and threshold (and at least the samples the signal needs), and
        this novelty threshold if one was calibrated."""
        samples = max(config.num_samples, self.num_samples) if self.signal in NEEDS_SAMPLES else config.num_samples
        novelty = config.novelty_threshold if math.isnan(self.novelty_threshold) else self.novelty_threshold
        return dataclasses.replace(
            config,
            uncertainty_signal=self.signal,
            uncertainty_threshold=self.threshold,
            num_samples=samples,
            novelty_threshold=novelty,
        )
