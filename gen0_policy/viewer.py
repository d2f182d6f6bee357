"""What a policy sees and does, in the viewers roboticists already use: Rerun (https://rerun.io) and
Foxglove (https://foxglove.dev), one class each with the same methods.

One logger for every source: the viewer node (a running policy, over ROS), ``gen0 data view`` (a
recorded bag or a built dataset) and anything else that has arrays. Entities (Foxglove topics are
the same paths with a leading ``/``; joints, plans and status are JSON messages there):

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

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gen0_policy.errors import ConfigError
from gen0_policy.images import fit_image

TIMELINE = "time"
HOLD_STATES = ("holding", "uncertain", "fault")
BACKENDS = ("rerun", "foxglove")


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


class FoxgloveViewer:
    """Logs to Foxglove: an MCAP file (``save``) and/or a live WebSocket server (``port``; open
    Foxglove and connect to ws://HOST:PORT). Cameras are foxglove.RawImage (the Image panel), state
    changes foxglove.Log (the Log panel), joints, plans and status JSON (the Plot and Raw Message
    panels: ``/joints/state.joint1``, ``/policy/status.uncertainty``). Times are ``log_time`` in ns."""

    def __init__(
        self,
        name: str = "gen0",
        save: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        model_image_size: int = 64,
    ) -> None:
        import foxglove

        self.fg = foxglove
        self.context = foxglove.Context()  # its own channels and sinks: several viewers never mix
        self.mcap = None
        if save:
            Path(save).parent.mkdir(parents=True, exist_ok=True)
            self.mcap = foxglove.open_mcap(str(save), allow_overwrite=True, context=self.context)
        self.server = foxglove.start_server(name=name, host=host, port=port, context=self.context) if port else None
        self.model_image_size = model_image_size
        self._channels: dict[str, Any] = {}
        self._state = ""

    def _channel(self, topic: str, kind: str = "json") -> Any:
        if topic not in self._channels:
            from foxglove.channels import LogChannel, RawImageChannel

            make = {"image": RawImageChannel, "log": LogChannel}.get(kind)
            self._channels[topic] = (
                make(topic, context=self.context)
                if make
                else self.fg.Channel(topic, schema={"type": "object"}, message_encoding="json", context=self.context)
            )
        return self._channels[topic]

    def _image(self, topic: str, t: float, frame: np.ndarray) -> None:
        from foxglove.messages import RawImage, Timestamp

        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        h, w = frame.shape[:2]
        msg = RawImage(timestamp=Timestamp.from_epoch_secs(t), frame_id=topic.rsplit("/", 1)[-1], width=w, height=h,
                       encoding="rgb8", step=3 * w, data=frame.tobytes())  # fmt: skip
        self._channel(topic, "image").log(msg, log_time=_ns(t))

    def _json(self, topic: str, t: float, message: dict[str, Any]) -> None:
        self._channel(topic).log(json.dumps(message), log_time=_ns(t))

    def camera(self, t: float, name: str, frame: np.ndarray) -> None:
        self._image(f"/cameras/{name}", t, frame)
        S = self.model_image_size
        self._image(f"/model/{name}", t, fit_image(frame, S, S))

    def joints(self, t: float, names: Sequence[str], positions: np.ndarray, kind: str = "state") -> None:
        values = np.asarray(positions, np.float64)
        self._json(f"/joints/{kind}", t, {n: float(v) for n, v in zip(names, values, strict=True)})

    def chunk(self, t: float, names: Sequence[str], step_dt: float, actions: np.ndarray, committed: int = 0) -> None:
        actions = np.asarray(actions, np.float64)
        self._json("/plan", t, {"step_dt": step_dt, "committed": committed,
                                "joints": {n: actions[:, j].tolist() for j, n in enumerate(names)}})  # fmt: skip

    def status(self, t: float, state: str, reason: str, uncertainty: float, threshold: float) -> None:
        finite = lambda x: float(x) if math.isfinite(x) else None  # noqa: E731 - JSON has no NaN
        self._json("/policy/status", t, {"state": state, "reason": reason, "uncertainty": finite(uncertainty),
                                         "threshold": finite(threshold)})  # fmt: skip
        label = f"{state}: {reason}" if reason else state
        if label != self._state:
            from foxglove.messages import Log, LogLevel, Timestamp

            self._state = label
            level = LogLevel.Warning if state in HOLD_STATES else LogLevel.Info
            msg = Log(timestamp=Timestamp.from_epoch_secs(t), level=level, message=label, name="gen0_policy")
            self._channel("/policy/state", "log").log(msg, log_time=_ns(t))

    def close(self) -> None:
        if self.mcap is not None:
            self.mcap.close()
            self.mcap = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def _ns(t: float) -> int:
    return max(0, round(t * 1e9))


def open_viewer(backend: str, name: str, save: str | Path | None = None, live: bool = False, address: str = "",
                model_image_size: int = 64) -> PolicyViewer | FoxgloveViewer:  # fmt: skip
    """The viewer of ``backend``. ``live``: Rerun spawns its viewer, Foxglove serves on ``address``
    (``PORT`` or ``HOST:PORT``, default 8765); for Rerun ``address`` is a running viewer's gRPC URL."""
    if backend == "rerun":
        return PolicyViewer(name, save=save, spawn=live, connect=address, model_image_size=model_image_size)
    if backend == "foxglove":
        host, _, port = address.rpartition(":") if ":" in address else ("", "", address)
        port_number = int(port or 8765) if live or address else 0
        return FoxgloveViewer(name, save=save, port=port_number, host=host or "127.0.0.1",
                              model_image_size=model_image_size)  # fmt: skip
    raise ConfigError(f"viewer backend must be one of {BACKENDS}, got {backend!r}")


def view_episode(viewer: PolicyViewer | FoxgloveViewer, episode, joint_names: Sequence[str]) -> int:
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
