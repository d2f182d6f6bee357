"""Episode videos: H.264 MP4 files holding episodes back to back, written and decoded by span."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from gen0_policy.data.lerobot.layout import PIX_FMT
from gen0_policy.errors import DatasetError
from gen0_policy.images import fit_image


class VideoFile:
    """One open MP4 receiving episodes back to back; pts count frames from the file's start."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int, gop: int) -> None:
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, PIX_FMT
        self.stream.codec_context.time_base = 1 / Fraction(fps).limit_denominator(1001)
        # No B-frames: seeking to an episode start then decodes forward without reordering.
        self.stream.options = {"crf": str(crf), "g": str(gop), "bf": "0", "preset": "veryfast"}
        self.frames = 0
        self.bytes = 0  # encoded so far; the file on disk lags behind by the muxer's buffer

    def write(self, frames: np.ndarray) -> None:
        import av

        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = self.frames
            if i == 0:  # every episode starts on a keyframe, so reading one never decodes its neighbour
                frame.pict_type = av.video.frame.PictureType.I
            self._mux(self.stream.encode(frame))
            self.frames += 1

    def _mux(self, packets: list) -> None:
        self.bytes += sum(packet.size for packet in packets)
        self.container.mux(packets)

    def size_mb(self) -> float:
        return self.bytes / 2**20

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()


def decode_spans(
    path: Path,
    spans: list[tuple[float, int]],
    fps: float,
    image_size: tuple[int, int] | None,
    seek: bool = False,
) -> list[np.ndarray]:
    """Decode frames [from_timestamp, from_timestamp + length / fps) of each span, in one pass over the file."""
    import av

    firsts = [round(start * fps) for start, _ in spans]
    out: list[np.ndarray | None] = [None] * len(spans)
    filled = [0] * len(spans)
    order = sorted(range(len(spans)), key=lambda i: firsts[i])
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if seek and firsts[order[0]] > 0:
                container.seek(int(spans[order[0]][0] / stream.time_base), stream=stream, backward=True)
            k = 0  # position in `order` of the first span not yet complete
            for frame in container.decode(stream):
                index = round(frame.time * fps)
                while k < len(order) and index >= firsts[order[k]] + spans[order[k]][1]:
                    k += 1
                if k == len(order):
                    break
                i = order[k]
                if index < firsts[i]:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if out[i] is None:
                    out[i] = np.empty((spans[i][1], *rgb.shape), dtype=np.uint8)
                out[i][index - firsts[i]] = rgb
                filled[i] += 1
                if image_size is not None and filled[i] == spans[i][1]:
                    out[i] = fit_image(out[i], *image_size)  # the one image path, a whole episode at once
    except av.error.FFmpegError as exc:
        raise DatasetError(f"cannot decode video {path}: {exc}") from exc
    for i, (start, length) in enumerate(spans):
        if filled[i] != length:
            raise DatasetError(
                f"video {path} holds {filled[i]} of the {length} frames expected from t={start:.3f} s; "
                "the video is truncated or its timestamps do not match meta/episodes"
            )
    return [o for o in out if o is not None]
