"""The model's configuration and its size presets.

One dataclass describes the whole network (LeRobot's config/modeling split); a preset is just a
named set of overrides, so a 1 M-parameter test model and a 10 B-parameter cluster model are the
same code with different numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from gen0_policy.errors import ConfigError, check_keys, coerce_numbers

CAMERA_ROLES = ("scene", "wrist", "head")
LANGUAGE_ENCODERS = ("minilm", "hash")
# "scratch": the conv stages of image_channels, trained with the policy. "efficientnet_lite0": the first
# image_backbone_blocks blocks of EfficientNet-Lite0, pretrained on ImageNet and frozen but for the last
# image_backbone_trainable_blocks of them.
IMAGE_BACKBONES = ("scratch", "efficientnet_lite0")
# EfficientNet-Lite0's cumulative stride after each of its 16 blocks (and after its stem: 2).
LITE0_BLOCK_STRIDES = (2, 4, 4, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32, 32)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and shapes of the policy network. Every field is plain data (saved as JSON)."""

    # Transformer sizes. The action expert shares the width so it can cross-attend the backbone.
    width: int = 128
    heads: int = 4
    backbone_layers: int = 2
    expert_layers: int = 2
    expert_width: int = 0  # 0: same as width
    expert_heads: int = 0  # 0: same as heads
    mlp_ratio: float = 4.0
    # Vision: stride-2 conv stages, then average-pooled to image_grid x image_grid tokens per camera.
    image_size: int = 64
    image_channels: tuple[int, ...] = (16, 32, 64)
    image_grid: int = 4
    image_backbone: str = "scratch"  # one of IMAGE_BACKBONES; a pretrained one ignores image_channels
    image_backbone_blocks: int = 11  # EfficientNet-Lite0 blocks kept: 11 ends at stride 16, 112 channels
    # The last kept blocks fine-tuned with the policy (their BatchNorm statistics stay ImageNet's); 0: all frozen.
    image_backbone_trainable_blocks: int = 0
    # Spatial-softmax keypoints per camera (their expected image x, y), one extra token per camera:
    # average pooling blurs where a small object is; keypoints keep it (0: none).
    image_keypoints: int = 0
    # More keypoints, read from a finer map: the EfficientNet-Lite0 map after image_fine_keypoint_blocks
    # blocks (5: stride 8, 40 channels; a 12x12 map of a 96x96 input where the last map is 6x6). A cell
    # of the last map spans a fifth of the Panda's workspace; placing a cube within 2-3 cm needs finer
    # (README, "Why grasping failed"). Projected into the same keypoint token (0: none).
    image_fine_keypoints: int = 0
    image_fine_keypoint_blocks: int = 5
    max_cameras: int = 2
    # Actions: a chunk of chunk_size steps in a padded space of max_dof joints; action_patch
    # consecutive steps share one token (a 100-step chunk is 10 tokens, not 100).
    max_dof: int = 32
    chunk_size: int = 16
    action_patch: int = 2
    max_prefix: int = 4
    # Conditioning.
    language_encoder: str = "minilm"
    language_dim: int = 384
    embodiment_slots: int = 8
    # Flow matching: Euler steps at inference.
    flow_steps: int = 4
    # Training only: weight of an auxiliary loss that predicts, from the observation, the joint state
    # the episode ends in. The end of a reach is where the ball is: the chunk's first steps barely
    # depend on it, so without this the encoder can ignore small targets (0: no such head).
    goal_loss_weight: float = 0.0
    # The frozen text encoder is not part of this network; counted separately in `gen0 model info`.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        coerce_numbers(self)
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} must be divisible by heads {self.heads}")
        positive = ("width", "heads", "backbone_layers", "image_size", "image_grid", "max_cameras", "max_dof")
        positive += ("chunk_size", "action_patch", "language_dim", "embodiment_slots", "flow_steps")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"model config {name} must be positive, got {getattr(self, name)}")
        if self.expert_dim % (self.expert_heads or self.heads):
            raise ConfigError(f"expert width {self.expert_dim} must be divisible by its heads")
        if self.expert_layers < 1:
            raise ConfigError("model config expert_layers must be >= 1")
        if self.chunk_size % self.action_patch:
            raise ConfigError(
                f"chunk_size {self.chunk_size} must be a multiple of action_patch {self.action_patch}; "
                "change one of them"
            )
        if not 0 <= self.max_prefix < self.chunk_size:
            raise ConfigError(f"max_prefix must be in [0, chunk_size); got {self.max_prefix} for {self.chunk_size}")
        if self.language_encoder not in LANGUAGE_ENCODERS:
            raise ConfigError(f"language_encoder must be one of {LANGUAGE_ENCODERS}, got {self.language_encoder!r}")
        if self.goal_loss_weight < 0:
            raise ConfigError(f"model config goal_loss_weight must be >= 0, got {self.goal_loss_weight}")
        if self.image_keypoints < 0:
            raise ConfigError(f"model config image_keypoints must be >= 0, got {self.image_keypoints}")
        if self.image_fine_keypoints < 0:
            raise ConfigError(f"model config image_fine_keypoints must be >= 0, got {self.image_fine_keypoints}")
        if self.image_fine_keypoints and not (
            self.image_keypoints
            and self.image_backbone == "efficientnet_lite0"
            and 1 <= self.image_fine_keypoint_blocks < self.image_backbone_blocks
        ):
            raise ConfigError(
                "image_fine_keypoints needs image_keypoints > 0, image_backbone efficientnet_lite0 and "
                f"image_fine_keypoint_blocks in 1..{self.image_backbone_blocks - 1} (before the last kept block), "
                f"got {self.image_fine_keypoint_blocks}"
            )
        if self.image_backbone not in IMAGE_BACKBONES:
            raise ConfigError(f"image_backbone must be one of {IMAGE_BACKBONES}, got {self.image_backbone!r}")
        if not 1 <= self.image_backbone_blocks <= len(LITE0_BLOCK_STRIDES):
            raise ConfigError(f"image_backbone_blocks must be in 1..16, got {self.image_backbone_blocks}")
        if not 0 <= self.image_backbone_trainable_blocks <= self.image_backbone_blocks:
            raise ConfigError(
                f"image_backbone_trainable_blocks must be in 0..{self.image_backbone_blocks} (the blocks kept), "
                f"got {self.image_backbone_trainable_blocks}"
            )
        if not self.image_channels:
            raise ConfigError("image_channels needs at least one conv stage")
        if self.image_size // self.image_stride < self.image_grid:
            raise ConfigError(
                f"image_size {self.image_size} shrinks below the {self.image_grid}x{self.image_grid} token grid "
                f"at the image backbone's stride {self.image_stride}; use fewer stages or blocks, or a larger image"
            )
        object.__setattr__(self, "image_channels", tuple(int(c) for c in self.image_channels))

    @property
    def image_stride(self) -> int:
        """How many pixels of the model's input one cell of the image backbone's feature map spans."""
        if self.image_backbone == "scratch":
            return 2 ** len(self.image_channels)
        return LITE0_BLOCK_STRIDES[self.image_backbone_blocks - 1]

    @property
    def image_feature_size(self) -> int:
        """The side of the image backbone's (square) feature map: every stride-2 stage rounds up."""
        return self._map_size(self.image_stride)

    @property
    def image_fine_feature_size(self) -> int:
        """The side of the finer map the fine keypoints read (image_fine_keypoint_blocks)."""
        return self._map_size(LITE0_BLOCK_STRIDES[self.image_fine_keypoint_blocks - 1])

    def _map_size(self, stride: int) -> int:
        size = self.image_size
        for _ in range(stride.bit_length() - 1):
            size = -(-size // 2)
        return size

    @property
    def expert_dim(self) -> int:
        return self.expert_width or self.width

    @property
    def expert_num_heads(self) -> int:
        return self.expert_heads or self.heads

    @property
    def action_tokens(self) -> int:
        return self.chunk_size // self.action_patch

    @property
    def camera_tokens(self) -> int:
        """Tokens per camera: the pooled grid, plus one keypoint token if keypoints are on."""
        return self.image_grid**2 + (1 if self.image_keypoints else 0)

    @property
    def observation_tokens(self) -> int:
        return self.max_cameras * self.camera_tokens + 3  # images, proprio, language, embodiment

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["image_channels"] = list(self.image_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        check_keys(data, {f.name for f in fields(cls)}, "model config")
        return cls(**data)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        return replace(self, **overrides) if overrides else self


PRESETS: dict[str, dict[str, Any]] = {
    # ~1 M parameters: unit tests and smoke runs.
    "test": dict(
        width=128,
        heads=4,
        backbone_layers=3,
        expert_layers=2,
        expert_width=96,
        image_size=32,
        image_channels=(16, 32),
        chunk_size=8,
        action_patch=2,
        max_prefix=3,
        flow_steps=3,
    ),
    # CPU-trainable multi-task models (two 64x64 cameras, 16-step chunks).
    "small": dict(
        width=384,
        heads=6,
        backbone_layers=6,
        expert_layers=4,
        expert_width=256,
        expert_heads=4,
        image_size=64,
        image_channels=(32, 64, 128),
        image_keypoints=32,
        chunk_size=16,
        action_patch=2,
        max_prefix=4,
    ),
    "medium": dict(
        width=512,
        heads=8,
        backbone_layers=6,
        expert_layers=3,
        expert_width=384,
        image_size=96,
        image_channels=(32, 64, 128, 256),
        image_keypoints=32,
        chunk_size=32,
        action_patch=4,
        max_prefix=8,
    ),
    # LeRobot ACT's default size and inputs (51.6 M parameters, one 96x96 camera, 100-action chunks),
    # for the throughput/latency comparison in benchmarks/train_benchmark.py. Most parameters sit in
    # the backbone, which runs once per chunk; the narrow expert runs flow_steps times.
    "act_equal": dict(
        width=640,
        heads=10,
        backbone_layers=9,
        expert_layers=4,
        expert_width=256,
        expert_heads=4,
        image_size=96,
        image_channels=(32, 64, 128, 256, 512),
        image_grid=3,
        max_cameras=1,
        chunk_size=100,
        action_patch=10,
        max_prefix=10,
        flow_steps=3,
    ),
    # Cluster scales: counted on the meta device, never allocated here.
    "1b": dict(
        width=2048,
        heads=16,
        backbone_layers=17,
        expert_layers=8,
        expert_width=1024,
        image_size=224,
        image_channels=(64, 128, 256, 512, 1024),
        image_grid=7,
        max_cameras=3,
        chunk_size=50,
        action_patch=1,
        max_prefix=10,
        embodiment_slots=64,
    ),
    "7b": dict(
        width=4096,
        heads=32,
        backbone_layers=30,
        expert_layers=12,
        expert_width=2048,
        image_size=224,
        image_channels=(64, 128, 256, 512, 1024),
        image_grid=7,
        max_cameras=3,
        chunk_size=50,
        action_patch=1,
        max_prefix=10,
        embodiment_slots=64,
    ),
    "10b": dict(
        width=5120,
        heads=40,
        backbone_layers=30,
        expert_layers=16,
        expert_width=2560,
        image_size=224,
        image_channels=(64, 128, 256, 512, 1024),
        image_grid=7,
        max_cameras=3,
        chunk_size=50,
        action_patch=1,
        max_prefix=10,
        embodiment_slots=64,
    ),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    """The named preset's config, with ``overrides`` applied (e.g. ``chunk_size=32``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; presets are {sorted(PRESETS)}")
    return ModelConfig(**{**PRESETS[name], **overrides})
