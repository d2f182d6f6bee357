"""The public inference API (openpi style): ``Gen0Policy.load(dir).infer(dict) -> dict``.

The runtime and ``gen0 sim rollout --policy`` code against this file only; the network, the
processor and the checkpoint layout behind it may change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gen0_policy.embodiment import Embodiment
from gen0_policy.errors import CheckpointError, ObservationError
from gen0_policy.images import aspect_mismatch, mount_mismatch
from gen0_policy.model.checkpoint import load_policy
from gen0_policy.model.config import ModelConfig
from gen0_policy.model.engines import build_sampler, resolve_engine
from gen0_policy.model.language import language_encoder
from gen0_policy.model.modeling import Gen0Model, split_maps
from gen0_policy.model.novelty import ImageNovelty
from gen0_policy.model.processor import Processor

PRECISIONS = ("auto", "fp32", "bf16", "int8")


def quantize_linear_int8(model: Gen0Model) -> Gen0Model:
    """int8 weights for every Linear, activations quantized on the fly (CPU only): a quarter of the
    fp32 bytes to read per chunk, ~1/3 less latency than bf16 here, errors ~2x bf16's. Uses torch's
    dynamic quantization, which torch has deprecated in favour of torchao; its warning is silenced."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def bf16_fast(device: torch.device) -> bool:
    """bf16 pays off on CUDA and on CPUs with AMX/AVX512-BF16 (~3x the fp32 matmul rate here)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return any(f is not None and f() for f in probe)


class Gen0Policy:
    """A trained policy: observation dict (+ committed actions) -> action chunk dict."""

    def __init__(
        self,
        model: Gen0Model,
        processor: Processor,
        meta: Mapping[str, Any],
        device: str | torch.device = "cpu",
        precision: str = "auto",
        engine: str = "torch",
        novelty: ImageNovelty | None = None,
        threads: int = 0,
    ) -> None:
        if precision not in PRECISIONS:
            raise CheckpointError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = torch.device(device)
        engine = resolve_engine(engine, self.device.type, precision)
        if precision == "int8" and self.device.type != "cpu":
            raise CheckpointError("precision int8 is for CPU inference; use bf16 on GPUs")
        if engine != "torch" and self.device.type != "cpu":
            raise CheckpointError(f"engine {engine} runs on the CPU; use engine torch on {device}")
        self.precision, self.engine = precision, engine
        bf16 = precision == "bf16" or (precision == "auto" and engine != "onnxruntime" and bf16_fast(self.device))
        self.bf16 = engine == "torch" and bf16  # the torch model's weights are bf16
        # What runs: "bf16" on OpenVINO is its encoder (the flow stays fp32, engines.py).
        self.inference_precision = "bf16" if bf16 else ("int8" if precision == "int8" else "fp32")
        self.model = model.to(self.device).eval()
        if self.bf16:  # weights in bf16 (half the bytes to read per chunk); the small conv net stays fp32
            self.model = self.model.to(torch.bfloat16)
            self.model.vision.float()
        elif precision == "int8" and engine == "torch":
            self.model = quantize_linear_int8(self.model)
        self._sample = build_sampler(
            self.model, engine, int8=precision == "int8", bf16=bf16 and engine != "torch", threads=threads
        )
        self._stem_maps: Any = None  # the torch engine's last feature maps (``feature_maps``), for novelty
        if engine == "torch":
            self.model.vision.stem.register_forward_hook(self._keep_stem_maps)
        self.processor = processor
        self.meta = dict(meta)
        self.config: ModelConfig = model.config
        self.language = language_encoder(self.config.language_encoder, self.config.language_dim)
        self._generator = torch.Generator(device="cpu").manual_seed(int(self.meta.get("seed", 0)))
        self.warnings: dict[str, str] = {}  # camera (or 'camera mount') -> why its view differs from training
        self.novelty = novelty  # training-frame feature statistics: infer reports "image_novelty"

    @classmethod
    def load(
        cls,
        checkpoint_dir: str | Path,
        device: str = "cpu",
        precision: str = "auto",
        engine: str = "torch",
        threads: int = 0,
    ) -> Gen0Policy:
        """Load a checkpoint folder (or a training run folder: its latest checkpoint). Runs no code.
        ``threads``: an exported engine's intra-op threads (0: the engine's default, every core);
        torch's are process-wide (``torch.set_num_threads``)."""
        files = load_policy(checkpoint_dir)
        model = Gen0Model(files.config)
        try:
            model.load_state_dict(files.state_dict, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"weights in {files.path} do not fit the model config: {exc}") from exc
        processor = Processor(files.config, files.embodiments, files.stats)
        novelty = None if files.novelty is None else ImageNovelty.from_dict(files.novelty, files.path / "novelty.json")
        return cls(
            model, processor, files.meta, device=device, precision=precision, engine=engine, novelty=novelty,
            threads=threads,
        )  # fmt: skip

    # -- what the runtime needs to know ---------------------------------------------------------
    @property
    def embodiments(self) -> list[str]:
        return list(self.processor.embodiments)

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @property
    def step_dt(self) -> float:
        return 1.0 / float(self.meta.get("fps", 10.0))

    @property
    def max_prefix(self) -> int:
        return self.config.max_prefix

    @property
    def camera_sizes(self) -> dict[str, dict[str, list[int]]]:
        """{robot: {camera: [width, height]}} of the training data's frames (empty if unknown)."""
        return dict(self.meta.get("camera_sizes", {}))

    def check_cameras(self, embodiment: str, frames: Mapping[str, Any]) -> None:
        """Note (once per camera, in ``warnings`` and the log) a camera whose aspect ratio differs from
        the training data's: the image path crops any frame to the model's input, but a different
        aspect means a different field of view than the policy learned from."""
        trained = self.camera_sizes.get(embodiment, {})
        for cam, frame in frames.items():
            shape = getattr(frame, "shape", ())
            if cam not in trained or len(shape) != 3:
                continue
            message = aspect_mismatch(cam, (int(shape[1]), int(shape[0])), tuple(trained[cam]))
            if message is None:
                self.warnings.pop(cam, None)
            elif self.warnings.get(cam) != message:
                self.warnings[cam] = message
                logging.getLogger(__name__).warning(message)

    @property
    def checkpoint_id(self) -> str:
        return str(self.meta.get("checkpoint_id", "untrained"))

    def embodiment(self, name: str) -> Embodiment:
        return self.processor.embodiment(name)

    def check_embodiment(self, embodiment: Embodiment) -> None:
        """Raise CheckpointError unless ``embodiment`` has the joints (in order) this policy was trained on;
        note (in ``warnings`` and the log) a camera mounted elsewhere than in its training data."""
        trained = self.processor.embodiment(embodiment.name)
        if trained.joint_names != embodiment.joint_names:
            raise CheckpointError(
                f"embodiment {embodiment.name} has joints {list(embodiment.joint_names)} but the policy was "
                f"trained on {list(trained.joint_names)}; post-train on data of this robot"
            )
        now, then = embodiment.sim.get("cameras", {}), trained.sim.get("cameras", {})
        for cam in sorted(set(now) | set(then)):
            message = mount_mismatch(cam, now.get(cam), then.get(cam))
            if message is None:
                self.warnings.pop(f"{cam} mount", None)  # as check_cameras: a warning holds while it is true
            elif self.warnings.get(f"{cam} mount") != message:
                self.warnings[f"{cam} mount"] = message
                logging.getLogger(__name__).warning(message)

    def _keep_stem_maps(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        self._stem_maps = output

    def _novelty(self, robot: str, cameras: list[str], pixels: torch.Tensor) -> dict[str, Any]:
        """Each present camera's novelty score (its features against the training frames')."""
        if self.novelty is None:
            return {"image_novelty": math.nan, "camera_novelty": {}}
        layout = self.processor.camera_layout(robot, cameras)
        maps, self._stem_maps = self._stem_maps, None
        B, N = pixels.shape[:2]
        with torch.inference_mode():
            exported = getattr(self._sample, "features", None)  # an ONNX engine's encode graph made them
            if maps is not None and split_maps(maps)[0].shape[0] == B * N:  # the sampler's pass over these pixels
                described = self.model.vision.describe_maps(maps, B, N)
            elif exported is not None and exported.shape[:2] == (B, N):
                described = torch.from_numpy(exported)
            else:
                described = self.model.vision.describe(pixels.to(self.device))
            features = described[0, : len(layout)].cpu().numpy()
        scores = {cam: self.novelty.score(robot, cam, features[slot]) for slot, (cam, _) in enumerate(layout)}
        finite = [v for v in scores.values() if math.isfinite(v)]
        return {"image_novelty": max(finite) if finite else math.nan, "camera_novelty": scores}

    # -- inference -------------------------------------------------------------------------------
    def infer(
        self, observation: Mapping[str, Any], committed: np.ndarray | None = None, num_samples: int = 1
    ) -> dict[str, Any]:
        """One action chunk.

        observation: {"embodiment": str, "instruction": str, "joint_positions": (D,),
                      "images": {camera: (H, W, 3) uint8}}
        committed:   (P, D) absolute targets that execute while the model thinks (P <= max_prefix).
        Returns {"actions": (H, D) float32 actions in the robot's action space whose first P rows are
                 ``committed`` (absolute joint targets, or per-step end-effector deltas),
                 "action_space": the robot's kind of action, so no consumer guesses,
                 "uncertainty": mean std of the samples in normalized units (NaN when num_samples == 1),
                 "samples": (K, H, D) when num_samples > 1,
                 "image_novelty": the most novel camera's score (model/novelty.py; NaN without statistics),
                 "camera_novelty": {camera: score}}. ``actions`` is the deterministic estimate.
        """
        if num_samples < 1:
            raise ObservationError(f"num_samples must be >= 1, got {num_samples}")
        name = observation.get("embodiment", "")
        embodiment = self.processor.embodiment(str(name))
        instruction = observation.get("instruction", "")
        if not isinstance(instruction, str):
            raise ObservationError(f"instruction must be a string, got {type(instruction).__name__}")
        batch = self.processor.observation(observation, self.language.encode([instruction])[0])
        self.check_cameras(embodiment.name, observation.get("images") or {})
        H, D = self.config.chunk_size, self.config.max_dof
        prefix = np.zeros((H, D), dtype=np.float32)
        mask = np.zeros(H, dtype=bool)
        P = 0
        if committed is not None:
            committed = np.asarray(committed, dtype=np.float32)
            if committed.ndim != 2 or committed.shape[1] != embodiment.dof:
                raise ObservationError(
                    f"committed must be (P, {embodiment.dof}) absolute joint targets, got {committed.shape}"
                )
            P = len(committed)
            if self.max_prefix < P:
                raise ObservationError(
                    f"committed has {P} steps; this policy was trained with at most {self.max_prefix}"
                )
            if not np.all(np.isfinite(committed)):
                raise ObservationError("committed actions contain NaN or inf")
            prefix[:P] = self.processor.normalize_actions(embodiment.name, committed)
            mask[:P] = True
        K = num_samples
        noise = torch.zeros(1 + (K if K > 1 else 0), H, D)
        if K > 1:
            noise[1:] = torch.randn(K, H, D, generator=self._generator)
        dtype = torch.bfloat16 if self.bf16 else torch.float32
        with torch.inference_mode():
            batch = {k: v.to(self.device) for k, v in batch.items()}
            B = noise.shape[0]
            x = self._sample(
                batch,
                torch.from_numpy(prefix).to(self.device, dtype)[None].expand(B, -1, -1),
                torch.from_numpy(mask).to(self.device)[None].expand(B, -1),
                noise.to(self.device, dtype),
            )
        normalized = x.float().cpu().numpy()
        actions = self.processor.unnormalize_actions(embodiment.name, normalized)  # (B, H, dof)
        if P:
            actions[:, :P] = committed  # exactly what will execute, not a round trip through the scale
        out: dict[str, Any] = {"actions": actions[0], "action_space": embodiment.action_space, "uncertainty": math.nan}
        out.update(self._novelty(embodiment.name, list(observation.get("images") or {}), batch["images"]))
        if K > 1:
            spread = normalized[1:, P:, : embodiment.dof].std(axis=0)
            out["uncertainty"] = float(spread.mean()) if spread.size else 0.0
            out["samples"] = actions[1:]
        return out
