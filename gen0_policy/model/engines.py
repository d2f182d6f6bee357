"""Inference engines for the chunk sampler: torch, or the model exported to ONNX and run by ONNX Runtime
or OpenVINO, runtimes users already trust for CPU inference.

Only ``Gen0Model.sample`` moves to the engine, as two graphs: ``encode`` (cameras, state and
instruction through the backbone, once per chunk; 85 % of the weights) and ``integrate`` (the
``flow_steps`` Euler steps of the expert). Pre- and post-processing stay in
:class:`~gen0_policy.model.policy.Gen0Policy`, so every engine sees the same tensors. Two graphs let
OpenVINO run the backbone in bf16 on CPUs with AMX while the flow, where rounding adds up over the
steps, stays fp32 (one graph all in bf16 lands 7x further from fp32). ``integrate`` runs on
ONNX Runtime for both engines (``_Flow``) and is exported twice: for one noise sample, the call the
runtime makes unless it measures the sample spread, with its batch fixed so that the exporter's shape
arithmetic folds away (1,366 nodes instead of 2,155 for ``act_equal``: 5.5 ms instead of 6.2 on a
2-core EPYC), and with a dynamic batch for several samples (1 + num_samples) of one observation.
``encode`` always takes a camera mask (all true when every camera is present).
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
ENGINE_CHOICES = ("auto", *ENGINES)
OBSERVATION_KEYS = ("images", "camera_roles", "camera_mask", "state", "dof_mask", "language", "embodiment")
ENCODE_OUTPUTS = ("context", "mask", "features")
FLOW_INPUTS = ("context", "mask", "dof_mask", "prefix", "committed", "noise")


def resolve_engine(engine: str, device: str, precision: str) -> str:
    """``auto``: torch on an accelerator; on the CPU ONNX Runtime (fp32, or int8), OpenVINO for bf16.
    The shipped checkpoints on one core of a 2-core EPYC, after a pause as chunks come: ONNX Runtime
    fp32 4.9-5.9 ms a chunk, within 1e-5 of torch fp32; torch 10.0-12.0 ms, fp32 or bf16
    (``benchmarks/engine_choice.py``). Any other name is returned as given (``build_sampler`` checks it)."""
    if engine != "auto":
        return engine
    if device != "cpu":
        return "torch"
    return "openvino" if precision == "bf16" else "onnxruntime"


class Sampler(Protocol):
    """Observation tensors, prefix, committed rows and noise -> the normalized chunk. An exported
    sampler also keeps ``features``, its last pass's camera descriptions (B, N, F), for novelty."""

    def __call__(
        self, obs: dict[str, torch.Tensor], prefix: torch.Tensor, committed: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor: ...


class _Encode(torch.nn.Module):
    """``Gen0Model.encode`` with positional tensor inputs, the key mask always an output, and each
    camera's feature description (``ImageEncoder.describe``, for image novelty) from the same pass."""

    def __init__(self, model: Gen0Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, *obs):
        obs = dict(zip(OBSERVATION_KEYS, obs, strict=True))
        context, mask = self.model.encode(obs)
        return context, mask, self.model.vision.describe(obs["images"])


class _Integrate(torch.nn.Module):
    """``Gen0Model.integrate`` with positional tensor inputs (what an exporter traces)."""

    def __init__(self, model: Gen0Model) -> None:
        super().__init__()
        self.model = model

    def forward(self, context, mask, dof_mask, prefix, committed, noise):
        return self.model.integrate(context, mask, dof_mask, prefix, committed, noise)


def full_observation(obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The observation with an explicit camera mask: the exported graph always applies one."""
    if "camera_mask" in obs:
        return obs
    return {**obs, "camera_mask": torch.ones(obs["images"].shape[:2], dtype=torch.bool)}


def _export(module: torch.nn.Module, args: tuple, path: Path, inputs, outputs, dynamic: dict) -> Path:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about the shape checks it folds
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return path


def export_onnx(model: Gen0Model, folder: Path) -> tuple[Path, Path, Path]:
    """Trace ``model.encode`` and ``model.integrate`` (fp32, CPU) to ``encode.onnx``,
    ``integrate.onnx`` (a dynamic noise batch) and ``integrate_single.onnx`` (one noise sample) in
    ``folder``."""
    cfg = model.config
    model = model.float().cpu().eval()
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
    encode = _export(
        _Encode(model), tuple(obs[k] for k in OBSERVATION_KEYS), folder / "encode.onnx",
        OBSERVATION_KEYS, ENCODE_OUTPUTS, {},
    )  # fmt: skip
    with torch.no_grad():
        context, mask = model.encode(obs)

    def flow_args(B: int) -> tuple:
        prefix, committed, noise = torch.zeros(B, H, D), torch.zeros(B, H, dtype=torch.bool), torch.zeros(B, H, D)
        return context, mask, obs["dof_mask"], prefix, committed, noise

    # B = 2 for the dynamic graph: > 1 samples for one observation, so the trace keeps the broadcast.
    batch_axis = {name: {0: "samples"} for name in ("prefix", "committed", "noise", "chunk")}
    integrate = _export(_Integrate(model), flow_args(2), folder / "integrate.onnx", FLOW_INPUTS, ("chunk",), batch_axis)
    single = _export(_Integrate(model), flow_args(1), folder / "integrate_single.onnx", FLOW_INPUTS, ("chunk",), {})
    return encode, integrate, single


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()


def _observation_feeds(obs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    full = full_observation(obs)
    return {name: _numpy(full[name]) for name in OBSERVATION_KEYS}


def _flow_feeds(context, mask, obs, prefix, committed, noise) -> dict[str, np.ndarray]:
    tensors = {"dof_mask": obs["dof_mask"], "prefix": prefix, "committed": committed, "noise": noise}
    return {"context": np.asarray(context), "mask": np.asarray(mask), **{k: _numpy(v) for k, v in tensors.items()}}


def _onnxruntime_session(path: Path, threads: int = 0, int8: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = path.with_suffix(".int8.onnx")
        quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
        path = quantized
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _Flow:
    """The Euler steps on ONNX Runtime, for both engines: one noise sample runs the graph exported
    with its batch fixed, several the dynamic one. A graph of many small operations on a few tokens,
    where ONNX Runtime's per-operation cost is lower than OpenVINO's (dynamic batch, ``act_equal``, a
    2-core EPYC: 6.2 against 7.6 ms), and OpenVINO 2026.4 compiles the fixed-batch graph to chunks up
    to 0.015 off torch's in ``test_exported_engines_match_torch``, which ONNX Runtime passes at 1e-4."""

    def __init__(self, dynamic: Path, single: Path, threads: int = 0, int8: bool = False) -> None:
        self.dynamic = _onnxruntime_session(dynamic, threads, int8)
        self.single = _onnxruntime_session(single, threads, int8)

    def __call__(self, context, mask, obs, prefix, committed, noise) -> torch.Tensor:
        graph = self.single if noise.shape[0] == 1 else self.dynamic
        (chunk,) = graph.run(["chunk"], _flow_feeds(context, mask, obs, prefix, committed, noise))
        return torch.from_numpy(chunk)


class OnnxRuntimeSampler:
    """``Gen0Model.sample`` run by ONNX Runtime's CPU provider; ``int8``: weights quantized dynamically."""

    def __init__(self, graphs: tuple[Path, Path, Path], threads: int = 0, int8: bool = False) -> None:
        self.encode = _onnxruntime_session(graphs[0], threads, int8)
        self.flow = _Flow(graphs[1], graphs[2], threads, int8)
        self.features: np.ndarray | None = None

    def __call__(self, obs, prefix, committed, noise) -> torch.Tensor:
        context, mask, self.features = self.encode.run(list(ENCODE_OUTPUTS), _observation_feeds(obs))
        return self.flow(context, mask, obs, prefix, committed, noise)


class OpenVinoSampler:
    """``Gen0Model.sample`` with the encoder compiled by OpenVINO for the CPU, latency-optimized
    (``bf16``: in bf16, with AMX where the CPU has it), and the flow in fp32 on ONNX Runtime (``_Flow``)."""

    def __init__(self, graphs: tuple[Path, Path, Path], threads: int = 0, bf16: bool = False) -> None:
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.encode = ov.Core().compile_model(str(graphs[0]), "CPU", config).create_infer_request()
        self.flow = _Flow(graphs[1], graphs[2], threads)
        self.features: np.ndarray | None = None

    def __call__(self, obs, prefix, committed, noise) -> torch.Tensor:
        self.encode.infer(_observation_feeds(obs))
        context, mask, features = (self.encode.get_output_tensor(i).data for i in range(3))
        self.features = features.copy()
        return self.flow(context, mask, obs, prefix, committed, noise)


def build_sampler(model: Gen0Model, engine: str, int8: bool = False, bf16: bool = False, threads: int = 0) -> Sampler:
    """A sampler for ``engine``: torch calls the model directly; the others run an ONNX export of it,
    written to a temporary folder that lives as long as the sampler (a checkpoint folder may be read-only).
    ``int8`` is ONNX Runtime's (weights quantized dynamically), ``bf16`` OpenVINO's (the encoder)."""
    if engine not in ENGINES:
        raise CheckpointError(f"inference engine must be one of {ENGINE_CHOICES}, got {engine!r}")
    if engine == "torch":
        return model.sample
    if engine == "openvino" and int8:
        raise CheckpointError("engine openvino runs fp32 or bf16 here; use engine onnxruntime or torch for int8")
    if engine == "onnxruntime" and bf16:
        raise CheckpointError("engine onnxruntime runs fp32 or int8 here; use engine openvino or torch for bf16")
    folder = tempfile.TemporaryDirectory(prefix="gen0-onnx-")
    graphs = export_onnx(model, Path(folder.name))
    try:
        if engine == "onnxruntime":
            sampler = OnnxRuntimeSampler(graphs, threads, int8)
        else:
            sampler = OpenVinoSampler(graphs, threads, bf16)
    except ImportError as exc:
        raise CheckpointError(f"inference engine {engine} is not installed ({exc}); run ./setup.sh") from exc
    sampler._folder = folder  # the ONNX files are gone once the sampler is
    return sampler
