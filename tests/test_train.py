"""Training: the loss goes down, runs are seeded and resumable, configs parse."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medaka_heart.model.checkpoint import load_checkpoint
from medaka_heart.model.data import FramePool, generate_sequence, toy_pairs
from medaka_heart.model.folder import model_hash
from medaka_heart.model.losses import dice_bce_loss
from medaka_heart.model.train import _load_init, draw_batch, train, view_spec
from medaka_heart.model.train_config import (
    DataConfig,
    InputConfig,
    OptimConfig,
    SourceConfig,
    TrainConfig,
    load_train_config,
)
from medaka_heart.model.unet import UNet, UNetConfig

torch.set_num_threads(1)
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "train"


def _tiny_config(**optim):
    opts = dict(epochs=2, steps_per_epoch=4, batch_size=4, lr=3e-3, warmup_steps=0, threads=1)
    opts.update(optim)
    return TrainConfig(model=UNetConfig(depth=2, base_filters=4, dropout=0.1, in_channels=2),
                       input=InputConfig(size=32, coarse_size=64), optim=OptimConfig(**opts),
                       data=DataConfig(sources=(SourceConfig("toy"),), pool_size=16,
                                       val_generated=4))


def test_only_three_channel_batches_use_motion_planes():
    """Two-channel training never touches the motion planes (same work and random stream as
    before they existed); three-channel coarse samples carry them."""
    import dataclasses

    config = dataclasses.replace(_tiny_config(), input=InputConfig(size=32, coarse_size=64,
                                                                   p_coarse=1.0))
    pool = FramePool([generate_sequence(toy_pairs(0), 8, view_spec(config), "toy")], 4)
    moving = pool.motion.copy()
    pool.motion = None  # any use would fail
    x, _ = draw_batch([pool], np.ones(1), np.random.default_rng(0), 6, config)
    assert x.shape[1] == 2
    pool.motion = moving
    three = dataclasses.replace(config, model=dataclasses.replace(config.model, in_channels=3))
    x, _ = draw_batch([pool], np.ones(1), np.random.default_rng(0), 6, three)
    assert x.shape[1] == 3
    assert (x[:, 1] == 0).all()  # all coarse
    assert x[:, 2].amax(dim=(1, 2)).gt(0).any()


def test_tiny_model_loss_goes_down():
    config = _tiny_config()
    torch.manual_seed(0)
    pool = FramePool([generate_sequence(toy_pairs(0), 8, view_spec(config), "toy")])
    x, y = draw_batch([pool], np.ones(1), np.random.default_rng(0), 8, config)
    assert x.shape == (8, 2, 32, 32)  # image + pass plane
    assert set(torch.unique(x[:, 1]).tolist()) <= {0.0, 1.0}
    assert x.dtype == torch.float32
    model = UNet(config.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = dice_bce_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_train_writes_model_folder_metrics_and_resumes_exactly(tmp_path):
    config = _tiny_config()
    full = train(config, tmp_path / "full", progress=False)
    assert full.epochs_run == 2
    assert (full.model_dir / "model.pt").is_file()
    assert (full.model_dir / "config.json").is_file()
    lines = [json.loads(s) for s in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(0.0 <= r["val_dice"] <= 1.0 for r in lines)
    info = load_checkpoint(full.model_dir).info
    assert info.input_size == 32
    assert info.training["sources"][0]["kind"] == "toy"

    train(config, tmp_path / "split", progress=False, max_epochs=1)
    train(config, tmp_path / "split", progress=False, resume=True)
    a = load_checkpoint(tmp_path / "full" / "last.pt").state_dict
    b = load_checkpoint(tmp_path / "split" / "last.pt").state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    log = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    resumed = [json.loads(s) for s in log]
    assert [r["epoch"] for r in resumed] == [1, 2]


def test_resume_refuses_a_different_config_but_may_train_longer(tmp_path):
    train(_tiny_config(epochs=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"\[optim\] lr.*cannot resume"):
        train(_tiny_config(lr=1e-4), tmp_path, progress=False, resume=True)
    longer = train(_tiny_config(epochs=2), tmp_path, progress=False, resume=True)
    assert longer.epochs_run == 2
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in log] == [1, 2]


def test_init_starts_from_given_weights_of_the_same_architecture(tmp_path):
    first = train(_tiny_config(epochs=1), tmp_path / "first", progress=False)
    start = load_checkpoint(first.model_dir).state_dict
    still = _tiny_config(epochs=1, lr=1e-12, seed=5, init=str(first.model_dir))  # barely moves
    tuned = train(still, tmp_path / "tuned", progress=False)
    after = load_checkpoint(tmp_path / "tuned" / "last.pt")
    fresh = load_checkpoint(train(_tiny_config(epochs=1, lr=1e-12, seed=5), tmp_path / "fresh",
                                  progress=False).model_dir).state_dict
    weights = [k for k in start if k.endswith("weight") and start[k].ndim == 4]
    for k in weights:  # convolutions: the given weights, not a fresh random start
        torch.testing.assert_close(after.state_dict[k], start[k], rtol=0, atol=1e-6)
    assert any(not torch.allclose(fresh[k], start[k]) for k in weights)
    described = load_checkpoint(tuned.model_dir).info.training["init"]
    assert described["sha256"] == model_hash(first.model_dir)
    other = TrainConfig(model=UNetConfig(depth=2, base_filters=8, in_channels=2),
                        input=InputConfig(size=32, coarse_size=64),
                        optim=OptimConfig(epochs=1, steps_per_epoch=1, batch_size=2, threads=1,
                                          init=str(first.model_dir)),
                        data=DataConfig(sources=(SourceConfig("toy"),), pool_size=8,
                                        val_generated=2))
    with pytest.raises(ValueError, match="architecture"):
        train(other, tmp_path / "other", progress=False)


def test_a_localiser_is_validated_on_whole_frames_only(tmp_path):
    """A model trained on coarse samples only (a localiser) is chosen by its coarse-pass Dice,
    not by fine crops it never saw."""
    import dataclasses

    both = _tiny_config(epochs=1)
    only_coarse = dataclasses.replace(both, input=InputConfig(size=32, coarse_size=64,
                                                              p_coarse=1.0))
    for config, passes in ((both, {"fine", "coarse"}), (only_coarse, {"coarse"})):
        out = tmp_path / str(len(passes))
        result = train(config, out, progress=False)
        row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        assert {k[4:-5] for k in row if k.startswith("val_") and k.endswith("_dice")
                and k != "val_dice"} == passes
        assert result.best_val_dice == pytest.approx(np.mean([row[f"val_{p}_dice"]
                                                              for p in passes]))


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_shipped_configs_parse(name):
    config = load_train_config(CONFIGS / name)
    assert config.data.sources
    if name == "paper.toml":
        o = config.optim
        assert (o.lr, o.batch_size, o.epochs, o.steps_per_epoch) == (1e-5, 8, 60, 300)
        assert (config.model.base_filters, config.input.size, o.loss) == (64, 256, "dice")
    init = config.optim.init
    if init and init.startswith("runs/"):  # a step of a recipe: its making is shown
        made_by = CONFIGS / f"{Path(init).parent.name}.toml"
        card = (CONFIGS.parents[1] / "docs" / "model_card.md").read_text()
        assert made_by.is_file() or init in card
    elif init:  # starts from the shipped weights: same architecture, or more inputs
        shipped = load_checkpoint(CONFIGS.parents[1] / init).info.architecture
        assert dataclasses.replace(shipped, in_channels=config.model.in_channels) == config.model
        assert shipped.in_channels <= config.model.in_channels


def test_init_grows_the_inputs_of_a_model_without_changing_what_it_does(tmp_path):
    """A four-channel model started from a two-channel one gives its outputs exactly while
    the new (beat) planes are zero: those start at zero weight, for training to find."""
    two = train(_tiny_config(epochs=1), tmp_path / "two", progress=False)
    config = dataclasses.replace(_tiny_config(epochs=1, lr=1e-12, init=str(two.model_dir)),
                                 model=UNetConfig(depth=2, base_filters=4, dropout=0.1,
                                                  in_channels=4))
    grown = train(config, tmp_path / "four", progress=False)
    assert load_checkpoint(grown.model_dir).info.architecture.in_channels == 4
    old = load_checkpoint(two.model_dir).build_model().eval()
    new = UNet(config.model)
    _load_init(new, str(two.model_dir))
    new.eval()
    x = torch.rand(3, 4, 32, 32)
    x[:, 2:] = 0
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x[:, :2]), rtol=0, atol=1e-5)
    first = new.down[0][0].weight  # the new inputs start at zero weight: training finds them
    assert first.shape[1] == 4
    assert not first[:, 2:].any()
    assert first[:, :2].abs().sum() > 0
    three = dataclasses.replace(config, model=dataclasses.replace(config.model, in_channels=3),
                                optim=dataclasses.replace(config.optim,
                                                          init=str(tmp_path / "four" / "model")))
    with pytest.raises(ValueError, match="architecture"):  # fewer inputs: not a start
        train(three, tmp_path / "three", progress=False)


def test_bad_config_is_reported(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim]\nlearning_rate = 1\n")
    with pytest.raises(ValueError, match=r"bad\.toml.*learning_rate"):
        load_train_config(path)
    path.write_text('[[data.sources]]\nkind = "videos"\n')
    with pytest.raises(ValueError, match="unknown data source kind"):
        load_train_config(path)


def _heartseg_tree(root):
    import tifffile
    from skimage.draw import ellipse

    for name in ("fishA", "fishB", "fishC"):
        images = root / "train_images" / f"{name}_sample_gray"
        masks = root / "train_images" / f"{name}_mask"
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        for k in range(3):
            mask = np.zeros((48, 64), bool)
            rr, cc = ellipse(24, 20 + 3 * k, 8, 12, shape=mask.shape)
            mask[rr, cc] = True
            tifffile.imwrite(images / f"{k:04d}.tif", np.where(mask, 200, 60).astype(np.uint8))
            rgb = np.repeat(mask[..., None], 3, axis=-1).astype(np.uint8) * 255
            tifffile.imwrite(masks / f"{k:04d}_mask.tif", rgb, compression="lzw", photometric="rgb")


def test_cli_trains_on_a_heartseg_tree(tmp_path):
    from click.testing import CliRunner

    from medaka_heart.cli.train import train as train_command

    _heartseg_tree(tmp_path / "HeartSeg")
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[model]\ndepth = 2\nbase_filters = 4\n"
        "[input]\nsize = 32\ncoarse_size = 64\n"
        "[optim]\nepochs = 3\nsteps_per_epoch = 2\nbatch_size = 2\nthreads = 1\nwarmup_steps = 0\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(train_command, [str(config), "-o", str(out), "--data",
                                                str(tmp_path / "HeartSeg"), "--epochs", "1",
                                                "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "best validation Dice" in result.output
    info = load_checkpoint(out / "model").info
    source = info.training["sources"][0]
    assert source["kind"] == "heartseg"
    assert len(source["val_sequences"]) == 1
    assert set(source["train_sequences"]).isdisjoint(source["val_sequences"])
    bad = CliRunner().invoke(train_command, [str(config), "-o", str(out), "--data", str(tmp_path)])
    assert bad.exit_code != 0
    assert "no image/mask pairs" in bad.output
