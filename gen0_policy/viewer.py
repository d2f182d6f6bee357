"""What a policy sees and does, in Rerun (https://rerun.io), the viewer roboticists already use.

One logger for every source: the viewer node (a running policy, over ROS), ``gen0 data view`` (a
recorded bag or a built dataset) and anything else that has arrays. Entities:

- ``cameras/<name>``: the frame as the camera sent it; ``model/<name>``: the same frame after the
  one image path (gen0_policy/images.py), i.e. exactly what the network sees;
- ``joints/<joint>/state`` and ``joints/<joint>/command``: measured positions and sent targets;
- ``plan/<joint>``: each new chunk as a planned trajectory (x: seconds from the chunk's start,
  y: position), the committed prefix as ``plan/<joint>/committed``;
- ``policy/uncertainty`` against ``policy/threshold``; ``policy/state`` a text log of state changes
  with the reason for every hold.

Times go on the ``time`` timeline in seconds (the source's own clock: sim time, bag time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gen0_policy.images import fit_image

TIMELINE = "time"
HOLD_STATES = ("holding", "uncertain", "fault")


class PolicyViewer:
    """Logs to a Rerun recording: spawned viewer, a gRPC address, and/or an .rrd file.

    ``model_image_size``: side of the network's square input (the checkpoint's ``image_size``)."""

    def __init__(
        self,
        name: str = "gen0",
        save: str | Path | None = None,
        spawn: bool = False,
        connect: str = "",
        model_image_size: int = 64,
    ) -> None:
        import rerun as rr

        self.rr = rr
        self.rec = rr.RecordingStream(name)
        sinks = []  # every destination at once: a file for later and a live viewer
        if save:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(save)))
        if spawn:
            self.rec.spawn(connect=False)  # start the viewer process; the gRPC sink below feeds it
            sinks.append(rr.GrpcSink())
        if connect:
            sinks.append(rr.GrpcSink(connect))
        if sinks:
            self.rec.set_sinks(*sinks)
        self.model_image_size = model_image_size
        self._state = ""

    def _at(self, t: float) -> None:
        self.rec.set_time(TIMELINE, duration=float(t))

    def camera(self, t: float, name: str, frame: np.ndarray) -> None:
        self._at(t)
        self.rec.log(f"cameras/{name}", self.rr.Image(frame))
        S = self.model_image_size
        self.rec.log(f"model/{name}", self.rr.Image(fit_image(frame, S, S)))

    def joints(self, t: float, names: Sequence[str], positions: np.ndarray, kind: str = "state") -> None:
        """``kind``: ``state`` (measured) or ``command`` (sent to the controller)."""
        self._at(t)
        for name, value in zip(names, np.asarray(positions, np.float64), strict=True):
            self.rec.log(f"joints/{name}/{kind}", self.rr.Scalars(float(value)))

    def chunk(self, t: float, names: Sequence[str], step_dt: float, actions: np.ndarray, committed: int = 0) -> None:
        """One inference's chunk (H, D) as a planned trajectory per joint; ``committed`` leading rows
        were executing while the model thought."""
        self._at(t)
        actions = np.asarray(actions, np.float64)
        times = np.arange(len(actions)) * step_dt
        for j, name in enumerate(names):
            strip = np.stack([times, actions[:, j]], axis=1)
            self.rec.log(f"plan/{name}", self.rr.LineStrips2D([strip], colors=[[60, 140, 255]]))
            head = strip[: committed + 1]  # the prefix and the point where the new plan takes over
            self.rec.log(f"plan/{name}/committed", self.rr.LineStrips2D([head], colors=[[255, 160, 40]]))

    def status(self, t: float, state: str, reason: str, uncertainty: float, threshold: float) -> None:
        """The runtime's state (logged when it changes, with its reason) and uncertainty vs threshold."""
        self._at(t)
        if math.isfinite(uncertainty):
            self.rec.log("policy/uncertainty", self.rr.Scalars(float(uncertainty)))
        if math.isfinite(threshold):
            self.rec.log("policy/threshold", self.rr.Scalars(float(threshold)))
        label = f"{state}: {reason}" if reason else state
        if label != self._state:
            self._state = label
            level = "WARN" if state in HOLD_STATES else "INFO"
            self.rec.log("policy/state", self.rr.TextLog(label, level=level))

    def close(self) -> None:
        self.rec.flush()
        self.rec.disconnect()


def view_episode(viewer: PolicyViewer, episode, joint_names: Sequence[str]) -> int:
    """Log one recorded Episode (states, commanded actions, camera frames) step by step; returns the
    number of steps logged."""
    dt = 1.0 / float(episode.fps)
    for t in range(len(episode)):
        now = t * dt
        viewer.joints(now, joint_names, episode.states[t], "state")
        viewer.joints(now, joint_names, episode.actions[t], "command")
        for cam, frames in episode.images.items():
            viewer.camera(now, cam, frames[t])
    return len(episode)
