"""LeRobot ACT as a timed neighbour for ``train_benchmark.py``: run by a Python that has LeRobot.

LeRobot 0.4.4 pins torch < 2.11 and cannot share this project's venv (torch 2.13), so it lives in
its own venv (``--act-python``; see ``train_benchmark.py`` for the install). ``train_benchmark.py``
starts this script once and asks it, between its own repeats, for one timed ACT call at a time over
stdin/stdout, so ACT and our engines are interleaved on the same machine in one run.

ACT is LeRobot's default configuration (ResNet-18, 4 encoder + 1 decoder layers, dim 512, VAE for
training, 100-action chunks: 51.6 M parameters), one 96x96 camera and a 7-D state and action, fp32
as LeRobot runs it on a CPU. A chunk is timed end to end as a user calls it: the uint8 camera frame
to a float tensor, LeRobot's normalizing pre-processor, ``predict_action_chunk`` and the
unnormalizing post-processor. A training step is forward, backward and AdamW on a batch.

Protocol (one line each): ``chunk`` -> ``{"ms": ...}``; ``train B`` -> ``{"ms": ...}``; ``quit``.
The first line written is ``{"ready": true, "parameters": N}``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _torchvision_importable() -> None:
    """PyPI's torchvision links CUDA torch; beside a CPU-only torch its C extension cannot load and its
    import fails registering shapes for ``nms``/``qnms``, operators ACT never calls. Declaring their
    schemas lets the pure-Python models (ResNet-18, FrozenBatchNorm2d) import; nothing else changes."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    library = next(Path(spec.origin).parent.glob("_C*.so"), None)
    try:
        if library is not None:
            torch.ops.load_library(str(library))
            return
    except OSError:
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _torchvision_importable.library = lib  # the definitions live as long as the library object


def main() -> None:
    _torchvision_importable()
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.act.processor_act import make_act_pre_post_processors

    dof, size, image_key = 7, 96, "observation.images.scene"
    config = ACTConfig(
        device="cpu",
        pretrained_backbone_weights=None,  # offline; the weights' values do not change the time
        input_features={
            "observation.state": PolicyFeature(FeatureType.STATE, (dof,)),
            image_key: PolicyFeature(FeatureType.VISUAL, (3, size, size)),
        },
        output_features={"action": PolicyFeature(FeatureType.ACTION, (dof,))},
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    stats = {
        "observation.state": {"mean": torch.zeros(dof), "std": torch.ones(dof)},
        image_key: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)},
        "action": {"mean": torch.zeros(dof), "std": torch.ones(dof)},
    }
    pre, post = make_act_pre_post_processors(config, dataset_stats=stats)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    state = rng.uniform(-1, 1, dof).astype(np.float32)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5, weight_decay=1e-4)

    def chunk() -> None:
        policy.eval()
        obs = {
            image_key: torch.from_numpy(frame).permute(2, 0, 1).float() / 255.0,
            "observation.state": torch.from_numpy(state),
        }
        with torch.inference_mode():
            actions = post(policy.predict_action_chunk(pre(obs)))
        assert actions.shape == (1, config.chunk_size, dof)

    def train(batch: int) -> None:
        policy.train()
        data = {
            image_key: torch.rand(batch, 3, size, size),
            "observation.state": torch.randn(batch, dof),
            "action": torch.randn(batch, config.chunk_size, dof),
            "action_is_pad": torch.zeros(batch, config.chunk_size, dtype=torch.bool),
        }
        loss, _ = policy.forward(data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 10.0)
        optimizer.step()

    parameters = sum(p.numel() for p in policy.parameters())
    print(json.dumps({"ready": True, "parameters": parameters, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        start = time.perf_counter()
        if command[0] == "chunk":
            chunk()
        elif command[0] == "train":
            train(int(command[1]))
        else:
            print(json.dumps({"error": f"unknown command {command[0]!r}"}), flush=True)
            continue
        print(json.dumps({"ms": 1e3 * (time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    main()
