"""Inference engines for the chunk sampler: torch, or the model exported to ONNX and run by ONNX Runtime
or OpenVINO, runtimes users already trust for CPU inference.

Only ``Gen0Model.sample`` (encode once, ``flow_steps`` Euler steps of the expert) moves to the engine;
pre- and post-processing stay in :class:`~gen0_policy.model.policy.Gen0Policy`, so every engine sees
the same tensors. The exported graph takes a batch of noise samples (1 + num_samples) for one
observation and always a camera mask (all true when every camera is present): one graph for every
call the runtime makes.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from gen0_policy.errors import CheckpointError
from gen0_policy.model.modeling import Gen0Model

ENGINES = ("torch", "onnxruntime", "openvino")
OBSERVATION_KEYS = ("images", "camera_roles", "camera_mask", "state", "dof_mask", "language", "embodiment")
INPUTS = ("prefix", "committed", "noise", *OBSERVATION_KEYS)


class Sampler(Protocol):
    def __call__(
        self, obs: dict[str, torch.Tensor], prefix: torch.Tensor, committed: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor: ...


class _Exportable(torch.nn.Module):
    """``Gen0Model.sample`` with positional tensor inputs (what an exporter traces)."""

    def __init__(self, model: Gen0Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, prefix, committed, noise, *obs):
        return self.model.sample(dict(zip(OBSERVATION_KEYS, obs, strict=True)), prefix, committed, noise)


def full_observation(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The observation with an explicit camera mask: the exported graph always applies one."""
    if "camera_mask" in obs:
        return obs
    return {**obs, "camera_mask": torch.ones(obs["images"].shape[:2], dtype=torch.bool)}


def export_onnx(model: Gen0Model, path: Path) -> Path:
    """Trace ``model.sample`` (fp32, CPU) to an ONNX file whose noise batch is dynamic."""
    cfg = model.config
    N, S, H, D = cfg.max_cameras, cfg.image_size, cfg.chunk_size, cfg.max_dof
    obs = {
        "images": torch.zeros(1, N, 3, S, S, dtype=torch.uint8),
        "camera_roles": torch.zeros(1, N, dtype=torch.long),
        # One camera absent while tracing, so the traced graph applies the mask it is always given.
        "camera_mask": torch.arange(N)[None] > 0,
        "state": torch.zeros(1, D),
        "dof_mask": torch.ones(1, D, dtype=torch.bool),
        "language": torch.zeros(1, cfg.language_dim),
        "embodiment": torch.zeros(1, dtype=torch.long),
    }
    B = 2  # > 1 noise samples for one observation: the trace keeps the context's broadcast to the batch
    args = (torch.zeros(B, H, D), torch.zeros(B, H, dtype=torch.bool), torch.zeros(B, H, D))
    args += tuple(obs[k] for k in OBSERVATION_KEYS)
    batch_axis = {name: {0: "samples"} for name in ("prefix", "committed", "noise", "chunk")}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the shape checks it folds
        torch.onnx.export(
            _Exportable(model.float().cpu().eval()),
            args,
            str(path),
            input_names=list(INPUTS),
            output_names=["chunk"],
            dynamic_axes=batch_axis,
            opset_version=17,
            dynamo=False,
        )
    return path


def _feeds(obs: dict[str, torch.Tensor], prefix, committed, noise) -> dict[str, np.ndarray]:
    tensors = {"prefix": prefix, "committed": committed, "noise": noise, **full_observation(obs)}
    return {name: tensors[name].detach().cpu().float().numpy() if tensors[name].is_floating_point()
            else tensors[name].detach().cpu().numpy() for name in INPUTS}  # fmt: skip


class OnnxRuntimeSampler:
    """``Gen0Model.sample`` run by ONNX Runtime's CPU provider; ``int8``: weights quantized dynamically."""

    def __init__(self, onnx_path: Path, threads: int = 0, int8: bool = False) -> None:
        import onnxruntime as ort

        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = onnx_path.with_suffix(".int8.onnx")
            quantize_dynamic(str(onnx_path), str(quantized), weight_type=QuantType.QInt8)
            onnx_path = quantized
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def __call__(self, obs, prefix, committed, noise) -> torch.Tensor:
        (chunk,) = self.session.run(["chunk"], _feeds(obs, prefix, committed, noise))
        return torch.from_numpy(chunk)


class OpenVinoSampler:
    """``Gen0Model.sample`` compiled by OpenVINO for the CPU, latency-optimized."""

    def __init__(self, onnx_path: Path, threads: int = 0, int8: bool = False) -> None:
        import openvino as ov

        if int8:
            raise CheckpointError("engine openvino runs fp32 here; use engine onnxruntime for int8")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(onnx_path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, obs, prefix, committed, noise) -> torch.Tensor:
        result = self.request.infer(_feeds(obs, prefix, committed, noise))
        return torch.from_numpy(np.array(result[self.compiled.outputs[0]]))


def build_sampler(model: Gen0Model, engine: str, int8: bool = False, threads: int = 0) -> Sampler:
    """A sampler for ``engine``: torch calls the model directly; the others run an ONNX export of it,
    written to a temporary folder that lives as long as the sampler (a checkpoint folder may be read-only)."""
    if engine not in ENGINES:
        raise CheckpointError(f"inference engine must be one of {ENGINES}, got {engine!r}")
    if engine == "torch":
        return model.sample
    folder = tempfile.TemporaryDirectory(prefix="gen0-onnx-")
    path = export_onnx(model, Path(folder.name) / "sample.onnx")
    try:
        sampler = (OnnxRuntimeSampler if engine == "onnxruntime" else OpenVinoSampler)(path, threads, int8)
    except ImportError as exc:
        raise CheckpointError(f"inference engine {engine} is not installed ({exc}); run ./setup.sh") from exc
    sampler._folder = folder  # the ONNX file is gone once the sampler is
    return sampler
