"""`adapt`: hold-out splits, and a tiny model adapted end to end whose held-out Dice rises."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from medaka_heart.adapt import adapt, holdout_split
from medaka_heart.cli import main
from medaka_heart.io.annotations import Annotated
from medaka_heart.model.adapt import AdaptSettings, _lr
from medaka_heart.model.checkpoint import ModelInfo, load_checkpoint, save_model_folder
from medaka_heart.model.data import toy_pair
from medaka_heart.model.unet import UNet, UNetConfig


def rec(name: str, n: int) -> Annotated:
    blank = np.zeros((4, 4), np.uint8)
    return Annotated(name, (blank,) * n, (blank.astype(bool),) * n, tuple(range(10, 10 + n)),
                     "pairs")


def test_whole_recordings_are_held_out_never_all():
    split = holdout_split([rec(f"r{i}", 3) for i in range(8)], 0.25, seed=0)
    assert (split.how, len(split.held_out), len(split.train)) == ("recordings", 2, 6)
    assert not {r.name for r in split.train} & {r.name for r in split.held_out}
    two = holdout_split([rec("a", 3), rec("b", 3)], 0.9, seed=0)
    assert (len(two.train), len(two.held_out)) == (1, 1)


def test_one_recording_gives_a_block_of_neighbouring_frames():
    split = holdout_split([rec("only", 12)], 0.25, seed=3)
    (train,), (held,) = split.train, split.held_out
    assert split.how == "frames"
    assert len(held) == 3
    assert len(train) == 9
    assert np.all(np.diff(held.frames) == 1)  # contiguous
    assert sorted(train.frames + held.frames) == list(range(10, 22))


def test_one_frame_or_no_holdout_holds_nothing_out():
    assert holdout_split([rec("one", 1)]).how == "none"
    assert holdout_split([rec("a", 5), rec("b", 5)], 0.0).held_out == ()


@pytest.fixture
def lab(tmp_path):
    """A 'lab' of 6 recordings (PNG pairs) of 6 frames each: per recording one textured
    background and one dark ellipse (one microscope: dark hearts) that shrinks and grows like
    a ventricle."""
    rng = np.random.default_rng(5)
    for r in range(6):
        folder = tmp_path / "lab" / f"fish{r}"
        folder.mkdir(parents=True)
        background, _ = toy_pair(rng, 64, 64)
        cy, cx, a, b = rng.uniform(24, 40), rng.uniform(24, 40), *rng.uniform(9, 14, size=2)
        for i in range(6):
            k = 1.0 - 0.25 * (0.5 - 0.5 * np.cos(2 * np.pi * i / 6))
            mask = ((np.mgrid[0:64, 0:64][0] - cy) / (a * k)) ** 2 + (
                (np.mgrid[0:64, 0:64][1] - cx) / (b * k)) ** 2 <= 1
            image = np.clip(background - 60.0 * mask, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"f_{i:02d}.png"), image)
            cv2.imwrite(str(folder / f"f_{i:02d}_mask.png"), mask.astype(np.uint8) * 255)
    torch.manual_seed(0)
    arch = UNetConfig(depth=2, base_filters=4, dropout=0.0, in_channels=2)
    init = save_model_folder(tmp_path / "init", UNet(arch).eval(),
                             ModelInfo(arch, input_size=32, coarse_size=64, crop_scale=2.2))
    return tmp_path / "lab", init


def test_adapt_raises_held_out_dice_and_writes_a_usable_model_folder(lab, tmp_path):
    data, init = lab
    result = adapt(data, tmp_path / "adapted", init=init, steps=150, seed=0, progress=False,
                   command="medaka-heart adapt lab -o adapted")
    assert result.split == "recordings"
    assert result.held_out_frames == 12  # 2 of 6 recordings
    assert result.after.dice_mean > result.before.dice_mean + 0.2
    assert result.after.dice_mean > 0.6
    folder = tmp_path / "adapted"
    card = (folder / "MODEL_CARD.md").read_text()
    assert "Held-out scores" in card
    assert str(init) in card
    assert "adapt lab -o adapted" in card
    record = json.loads((folder / "adapt.json").read_text())
    assert record["scores"]["after"]["dice_mean"] == pytest.approx(result.after.dice_mean)
    assert record["held_out"]["split"] == "recordings"
    held = {r["name"] for r in record["held_out"]["recordings"]}
    trained = {r["name"] for r in record["annotations"]["recordings"]}
    assert len(held) == 2
    assert not held & trained
    info = load_checkpoint(folder).info
    assert info.training["adapted_from"]["path"] == str(init)
    assert info.input_size == 32
    assert info.coarse_size == 64
    # its network, exported and checked with every engine, runs on the first without a
    # check at start-up
    from medaka_heart.runtime_onnx import installed_engines, is_stamped
    from medaka_heart.segment import Segmenter

    engines = installed_engines()
    assert all(is_stamped(folder / "model.onnx", folder / "model.pt", e) for e in engines)
    seg = Segmenter(folder, threads=1, runtime="auto", device="cpu")
    assert seg.provenance()["runtime"] == engines[0]
    assert not seg.runtime._torch_nets


def test_a_beat_plane_model_learns_from_the_beat_of_each_recordings_frames(lab, tmp_path,
                                                                           monkeypatch):
    """A four-channel init is fine-tuned on each recording's frames as one scene, with their
    temporal std and median (the beat planes the analysis gives it); its held-out Dice rises.
    A two-channel init gets no beat statistics."""
    import medaka_heart.model.adapt as fewshot

    data, init2 = lab
    torch.manual_seed(1)  # (at seed 0 this tiny random net sticks at all-heart in 150 steps)
    arch = UNetConfig(depth=2, base_filters=4, dropout=0.0, in_channels=4)
    init4 = save_model_folder(tmp_path / "init4", UNet(arch).eval(),
                              ModelInfo(arch, input_size=32, coarse_size=64, crop_scale=2.2))
    seen = {}
    finetune = fewshot.finetune

    def spy(init, sequences, settings, **kwargs):
        seen[str(init)] = sequences
        return finetune(init, sequences, settings, **kwargs)

    monkeypatch.setattr(fewshot, "finetune", spy)
    result = adapt(data, tmp_path / "adapted4", init=init4, steps=150, seed=0, progress=False)
    adapt(data, tmp_path / "adapted2", init=init2, steps=1, seed=0, progress=False)
    assert all(seq.stats is None for seq in seen[str(init2)])
    four = seen[str(init4)]
    assert len(four) == 4  # recordings trained on
    for seq in four:
        assert seq.stats.shape == (1, 2, *seq.context.shape[1:])
        assert (seq.scene == 0).all()
        std, median = seq.stats[0].astype(np.float32)
        edge = seq.context_masks.any(axis=0) & ~seq.context_masks.all(axis=0)  # beats there
        assert std[edge].mean() > 3 * std[~seq.context_masks.any(axis=0)].mean()
        np.testing.assert_allclose(median, np.median(seq.context / 255.0, axis=0), atol=2e-3)
    assert result.after.dice_mean > result.before.dice_mean + 0.2
    assert result.after.dice_mean > 0.6


def test_adapt_is_reproducible_with_fixed_steps(lab, tmp_path):
    data, init = lab
    a = adapt(data, tmp_path / "a", init=init, steps=15, progress=False)
    b = adapt(data, tmp_path / "b", init=init, steps=15, progress=False)
    assert a.after == b.after
    wa, wb = load_checkpoint(tmp_path / "a").state_dict, load_checkpoint(tmp_path / "b").state_dict
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_adapt_prints_before_and_after_and_refuses_a_foreign_out_folder(lab, tmp_path):
    data, init = lab
    runner = CliRunner()
    out = tmp_path / "m"
    result = runner.invoke(main, ["adapt", str(data), "-o", str(out), "--init", str(init),
                                  "--steps", "5", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "before" in result.output
    assert "Dice, ES-like" in result.output
    assert (out / "model.pt").is_file()
    again = runner.invoke(main, ["adapt", str(data), "-o", str(out), "--init", str(init),
                                 "--steps", "5", "--no-progress"])
    assert again.exit_code == 0, again.output  # a model folder may be replaced
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.docx").write_text("precious")
    refused = runner.invoke(main, ["adapt", str(data), "-o", str(tmp_path / "notes"),
                                   "--init", str(init), "--steps", "5"])
    assert refused.exit_code != 0
    assert "not a model folder" in refused.output
    assert (tmp_path / "notes" / "thesis.docx").read_text() == "precious"
    bad = runner.invoke(main, ["adapt", str(tmp_path / "notes"), "-o", str(tmp_path / "x"),
                               "--init", str(init)])
    assert bad.exit_code != 0
    assert "no annotated frames found" in bad.output


def test_learning_rate_warms_up_by_steps_and_decays_to_its_floor_by_progress():
    settings = AdaptSettings(lr=1e-3, warmup_steps=10, min_lr_fraction=0.05)
    assert _lr(0, 0.0, settings) == pytest.approx(1e-4)
    assert _lr(9, 0.0, settings) == pytest.approx(1e-3)
    assert _lr(50, 0.5, settings) == pytest.approx(0.5 * (1e-3 + 5e-5))
    assert _lr(50, 1.0, settings) == pytest.approx(5e-5)
    assert _lr(50, 3.0, settings) == pytest.approx(5e-5)  # past the budget: stays at the floor


def test_a_time_budget_is_kept_when_steps_slow_down_mid_run(lab, monkeypatch):
    """The schedule follows the clock: steps that become 8x slower after the first five (another
    job on the same cores) neither overrun the budget nor cut the decay short. The clock is
    simulated: each batch drawn advances it by the step's duration."""
    import medaka_heart.model.adapt as model_adapt
    from medaka_heart.io.annotations import read_annotations
    from medaka_heart.model.data import views_of
    from medaka_heart.model.samples import largest_box_side

    data, init = lab
    spec = model_adapt.view_spec_of(load_checkpoint(init).info)
    sequences = [views_of(r.name, zip(r.images, r.masks, strict=True), spec,
                          largest_box_side(r.masks)) for r in read_annotations(data)]
    clock, rates = [100.0], []
    draw, lr_of = model_adapt.draw_batch, model_adapt._lr

    def slowing_draw(*args, **kwargs):
        clock[0] += 0.01 if len(rates) <= 5 else 0.08  # s per step
        return draw(*args, **kwargs)

    def record_lr(step, progress, settings):
        rates.append((progress, lr_of(step, progress, settings)))
        return rates[-1][1]

    monkeypatch.setattr(model_adapt, "draw_batch", slowing_draw)
    monkeypatch.setattr(model_adapt, "_lr", record_lr)
    monkeypatch.setattr(model_adapt, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    settings = AdaptSettings(seconds=2.0, min_steps=5, warmup_steps=3, batch_size=2)
    adapted = model_adapt.finetune(str(init), sequences, settings, progress=False)
    assert adapted.seconds == pytest.approx(2.01, abs=0.08)  # the step that crosses the end
    assert adapted.steps == len(rates) == 5 + 25  # 0.05 s + 25 x 0.08 s
    progress, lr = rates[-1]  # the last step ran at the budget's end, at the decay's floor
    assert progress > 0.95
    assert lr == pytest.approx(settings.lr * settings.min_lr_fraction, rel=0.02)


def test_single_annotated_frames_of_a_beat_plane_model_train_with_a_made_up_beat(
        lab, tmp_path, monkeypatch):
    """One annotated frame of a recording gives no beat planes (a still); a four-channel init
    trains on it as a scene of one made-up beat instead, whose planes change at the
    ventricle's rim, not on zero planes."""
    data, _ = lab
    single = tmp_path / "single"
    for folder in sorted(data.iterdir()):
        (single / folder.name).mkdir(parents=True)
        for name in ("f_00.png", "f_00_mask.png"):
            shutil.copy(folder / name, single / folder.name / name)
    torch.manual_seed(0)
    arch = UNetConfig(depth=2, base_filters=4, dropout=0.0, in_channels=4)
    init4 = save_model_folder(tmp_path / "init4", UNet(arch).eval(),
                              ModelInfo(arch, input_size=32, coarse_size=64, crop_scale=2.2))
    seen = []
    import medaka_heart.model.adapt as fewshot

    finetune = fewshot.finetune
    def spy(init, sequences, settings, **kwargs):
        seen.extend(sequences)
        return finetune(init, sequences, settings, **kwargs)

    monkeypatch.setattr(fewshot, "finetune", spy)
    adapt(single, tmp_path / "adapted", init=init4, steps=1, seed=0, progress=False)
    assert len(seen) == 4  # 4 of 6 one-frame recordings train (2 held out)
    for seq in seen:
        assert seq.stats is not None
        assert len(seq) > 1
        std = seq.stats[0, 0].astype(np.float32)
        rim = seq.context_masks.any(axis=0) & ~seq.context_masks.all(axis=0)
        assert std[rim].mean() > 3 * std[~seq.context_masks.any(axis=0)].mean()
