"""Per-video self-adaptation: the frame taught, what the adapted network learns, and how the
segmenter uses it (locating unchanged, every chunk segmented again by the adapted fine pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medaka_heart.runtime_onnx as runtime_onnx
import medaka_heart.segment as segment_module
from medaka_heart.mask_scores import frame_agreement
from medaka_heart.model.adapt import Adapted
from medaka_heart.model.checkpoint import ModelInfo, save_model_folder
from medaka_heart.model.data import toy_pair
from medaka_heart.model.inputs import COARSE, FINE
from medaka_heart.model.self_adapt import (
    MIN_AGREEMENT,
    MIN_TRACE_AGREEMENT,
    adapt_to_frame,
    check_adapted,
    pseudo_frame,
    search_frames,
    trace_agreement,
)
from medaka_heart.model.unet import UNet, UNetConfig
from medaka_heart.runtime_onnx import OnnxNetwork, OnnxUnavailable, installed_engines
from medaka_heart.segment import Segmenter

torch.set_num_threads(1)
ARCH = UNetConfig(depth=2, base_filters=4, dropout=0.0, in_channels=4)


def _folder(path, seed):
    """A model folder of a random four-channel (beat-plane) U-Net with a coarse pass."""
    torch.manual_seed(seed)
    net = UNet(ARCH)
    net.train()
    net(torch.rand(4, ARCH.in_channels, 32, 32))
    return save_model_folder(path, net.eval(), ModelInfo(ARCH, input_size=32, coarse_size=64,
                                                         crop_scale=2.2, threshold=0.5))


def _ellipse(k: float, shape=(64, 64), centre=(32.0, 30.0), axes=(12.0, 9.0)) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return ((yy - centre[0]) / (axes[0] * k)) ** 2 + ((xx - centre[1]) / (axes[1] * k)) ** 2 <= 1


@pytest.fixture(scope="module")
def beating():
    """(frames, masks): a dark ellipse on a textured background that contracts to 0.7 of its
    axes and relaxes, 3 beats of 8 frames."""
    background = toy_pair(np.random.default_rng(3), 64, 64)[0].astype(float)
    ks = 1.0 - 0.3 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(24) / 8))
    masks = np.stack([_ellipse(k) for k in ks])
    frames = np.clip(background - 70.0 * masks, 0, 255).astype(np.uint8)
    return frames, masks


@pytest.fixture(scope="module")
def trained(tmp_path_factory, beating):
    """A model folder whose network outlines the beating ellipse (adapted from a random one
    to its first frame), so that its masks have a shape to change."""
    frames, masks = beating
    where = tmp_path_factory.mktemp("trained")
    folder = _folder(where / "random", 1)
    info = Segmenter(folder, runtime="torch").runtime.info
    trained = adapt_to_frame(folder, info, frames[0], masks[0], steps=150, threads=1)
    return save_model_folder(where / "trained", trained.model, info)


def test_pseudo_frame_is_the_largest_mask_that_is_not_an_outlier():
    areas = np.array([0, 50, 10, 40, 0, 30, 20, 50])  # 90th percentile of the non-empty: 50
    assert pseudo_frame(areas) == 1  # the first of the largest
    assert pseudo_frame(np.r_[areas, 80]) == 1  # 80 > 1.25 x 50: a mask that took in more
    assert pseudo_frame(np.r_[areas, 60]) == 8  # 60 <= 1.25 x 50: the ventricle at its largest
    assert pseudo_frame(np.zeros(5)) is None


def test_trace_agreement_is_the_correlation_of_two_beats():
    beat = np.cos(2 * np.pi * np.arange(24) / 8)
    assert trace_agreement(100 + 30 * beat, 50 + 5 * beat) == pytest.approx(1.0)
    assert trace_agreement(100 - 30 * beat, 50 + 5 * beat) == pytest.approx(-1.0)
    half_rate = np.cos(np.pi * np.arange(24) / 8)  # the beat at half its rate
    assert abs(trace_agreement(half_rate, beat)) < 0.2
    assert trace_agreement(np.full(24, 7.0), beat) == 0.0  # no beat to compare
    with pytest.raises(ValueError, match="length"):
        trace_agreement(beat[:5], beat)


def test_an_adaptation_that_keeps_the_outline_but_loses_the_beat_is_not_used(beating):
    """Masks stuck at end-diastole overlap a beating ventricle's well (mean Dice above
    MIN_AGREEMENT) but do not beat: the trace check rejects them."""
    _, masks = beating
    stuck = np.repeat(masks[:1], len(masks), axis=0)
    agreement, trace, used = check_adapted(stuck, masks)
    assert agreement >= MIN_AGREEMENT
    assert trace < MIN_TRACE_AGREEMENT
    assert not used
    shrunk = np.stack([_ellipse(0.95 * k) for k in
                       1.0 - 0.3 * (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(24) / 8))])
    assert check_adapted(shrunk, masks)[2]  # a slightly smaller outline, the same beat


def test_the_frame_taught_is_looked_for_in_the_first_seconds():
    assert search_frames(20.0) == 100
    assert search_frames(15.0, seconds=1.0) == 15
    assert search_frames(None) is None
    assert search_frames(0.0) is None


def test_with_fine_net_changes_the_fine_pass_only(tmp_path):
    seg = Segmenter(_folder(tmp_path / "m", 0), threads=1, runtime="torch")
    own = Segmenter(_folder(tmp_path / "other", 7), threads=1, runtime="torch")
    other = own.runtime._checkpoint(own.runtime.path).build_model()
    adapted = seg.runtime.with_fine_net(other)
    rng = np.random.default_rng(0)
    x, beat = rng.random((3, 32, 32), np.float32), rng.random((3, 2, 32, 32), np.float32)
    coarse = rng.random((2, 64, 64), dtype=np.float32)
    before = seg.runtime.predict(x, FINE, beat=beat)
    after = adapted.predict(x, FINE, beat=beat)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, own.runtime.predict(x, FINE, beat=beat), atol=1e-6)
    np.testing.assert_array_equal(adapted.predict(coarse, COARSE),
                                  seg.runtime.predict(coarse, COARSE))
    np.testing.assert_array_equal(seg.runtime.predict(x, FINE, beat=beat), before)


@pytest.mark.skipif("openvino" not in installed_engines(), reason="needs OpenVINO")
def test_an_adapted_fine_pass_runs_in_openvino_with_its_weights_swapped_in(tmp_path,
                                                                          monkeypatch):
    """The fine pass's ONNX graph with the adapted weights gives torch's probabilities of the
    adapted network; the coarse pass keeps the original network."""
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    seg = Segmenter(_folder(tmp_path / "m", 0), threads=1, runtime="openvino")
    own = Segmenter(_folder(tmp_path / "other", 7), threads=1, runtime="torch")
    other = own.runtime._checkpoint(own.runtime.path).build_model()
    adapted = seg.runtime.with_fine_net(other)
    assert isinstance(adapted._onnx[FINE], OnnxNetwork)
    assert adapted._onnx[FINE] is not seg.runtime._onnx[FINE]
    rng = np.random.default_rng(0)
    x, beat = rng.random((3, 32, 32), np.float32), rng.random((3, 2, 32, 32), np.float32)
    coarse = rng.random((2, 64, 64), dtype=np.float32)
    after = adapted.predict(x, FINE, beat=beat)
    assert np.abs(after - seg.runtime.predict(x, FINE, beat=beat)).max() > 1e-3
    np.testing.assert_allclose(after, own.runtime.predict(x, FINE, beat=beat), atol=1e-4)
    np.testing.assert_array_equal(adapted.predict(coarse, COARSE),
                                  seg.runtime.predict(coarse, COARSE))


def _renamed(swap):
    """A graph whose weights are named otherwise: the swap fails."""
    return lambda model, weights: swap(model, {f"x.{n}": v for n, v in weights.items()})


def _one_left_out(swap):
    """One weight not swapped: the graph runs, but it is not the adapted network."""
    return lambda model, weights: swap(model, dict(list(weights.items())[1:]))


@pytest.mark.skipif("openvino" not in installed_engines(), reason="needs OpenVINO")
@pytest.mark.parametrize("broken", [_renamed, _one_left_out])
def test_an_adapted_graph_that_cannot_be_used_leaves_the_fine_pass_to_torch(
        tmp_path, monkeypatch, broken):
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    seg = Segmenter(_folder(tmp_path / "m", 0), threads=1, runtime="openvino")
    own = Segmenter(_folder(tmp_path / "other", 7), threads=1, runtime="torch")
    other = own.runtime._checkpoint(own.runtime.path).build_model()
    monkeypatch.setattr(runtime_onnx, "swap_weights", broken(runtime_onnx.swap_weights))
    adapted = seg.runtime.with_fine_net(other)
    assert FINE not in adapted._onnx
    rng = np.random.default_rng(0)
    x, beat = rng.random((3, 32, 32), np.float32), rng.random((3, 2, 32, 32), np.float32)
    np.testing.assert_allclose(adapted.predict(x, FINE, beat=beat),
                               own.runtime.predict(x, FINE, beat=beat), atol=1e-6)


def test_swap_weights_refuses_a_weight_of_another_shape(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    seg = Segmenter(_folder(tmp_path / "m", 0), threads=1, runtime="openvino")
    fine = seg.runtime._onnx[FINE]
    name, value = next(iter(seg.runtime.net.state_dict().items()))
    with pytest.raises(OnnxUnavailable, match=name.replace(".", r"\.")):
        fine.with_weights({name: np.zeros((*value.shape, 2), np.float32)})


def test_adapting_to_one_frame_teaches_the_whole_beat(tmp_path, beating):
    """A random network adapted to the first frame and its outline segments the video's other
    frames, at other stages of the beat, far better than before."""
    frames, masks = beating
    folder = _folder(tmp_path / "m", 1)
    seg = Segmenter(folder, threads=1, runtime="torch", self_adapt=False)
    trained = adapt_to_frame(folder, seg.runtime.info, frames[0], masks[0], steps=150,
                             threads=1)
    assert trained.steps == 150
    box = (30.0, 32.0, 2.2 * 24)
    plain = seg._segment_at(frames, box, 8.0).masks
    seg.runtime = seg.runtime.with_fine_net(trained.model)
    taught = seg._segment_at(frames, box, 8.0).masks
    dice_plain = frame_agreement(plain, masks).dice.mean()
    dice_taught = frame_agreement(taught, masks).dice.mean()
    assert dice_taught > 0.8
    assert dice_taught > dice_plain + 0.2
    systole = [4, 12, 20]  # the smallest frames: the network was shown the largest only
    assert (frame_agreement(taught[systole], masks[systole]).dice.mean()
            > frame_agreement(plain[systole], masks[systole]).dice.mean() + 0.2)


def test_adapting_needs_a_step(tmp_path, beating):
    frames, masks = beating
    folder = _folder(tmp_path / "m", 0)
    info = Segmenter(folder).runtime.info
    with pytest.raises(ValueError, match="at least one step"):
        adapt_to_frame(folder, info, frames[0], masks[0], steps=0)
    with pytest.raises(ValueError, match="self_adapt_steps"):
        Segmenter(tmp_path / "m", self_adapt=True, self_adapt_steps=0)


@pytest.mark.parametrize(("bias", "used"), [(-0.2, True), (-20.0, False)],
                         ids=["agrees", "destroys"])
def test_a_self_adapting_segmenter_teaches_its_own_mask_at_the_pseudo_frame(trained, beating,
                                                                              monkeypatch, bias,
                                                                              used):
    """The frame taught is `pseudo_frame` of the first pass's mask areas, with its first-pass
    mask; where the adapted masks of that frame's chunk agree with the first pass's
    (`check_adapted`), every chunk is segmented in the same crop by the adapted fine pass,
    else by the first; a video without any mask is not adapted."""
    frames, _ = beating
    chunks = [frames[:12], frames[12:]]
    folder = trained
    plain = Segmenter(folder, threads=1, runtime="torch", self_adapt=False)
    first = [found for _, found in plain.segment_video(chunks, 8.0)]
    areas = np.concatenate([f.masks.sum(axis=(1, 2)) for f in first])
    assert areas.any()
    taught = pseudo_frame(areas)
    torch.manual_seed(11)
    other = plain.runtime._checkpoint(plain.runtime.path).build_model()
    with torch.no_grad():  # a lower bias: smaller masks than the first pass found
        other.head.bias.add_(bias)
    seen = {}

    def fake_adapt(model, info, image, mask, *, steps, device, threads):
        seen.update(image=image, mask=mask, steps=steps)
        return Adapted(other, info, steps, 0.5, 0.1)

    monkeypatch.setattr(segment_module, "adapt_to_frame", fake_adapt)
    seg = Segmenter(folder, threads=1, runtime="torch", self_adapt=True, self_adapt_steps=9)
    found = [f for _, f in seg.segment_video(chunks, 8.0)]
    np.testing.assert_array_equal(seen["image"], frames[taught])
    np.testing.assert_array_equal(seen["mask"],
                                  np.concatenate([f.masks for f in first])[taught])
    assert seen["steps"] == 9
    other_seg = Segmenter(folder, threads=1, runtime="torch", self_adapt=False)
    other_seg.runtime = other_seg.runtime.with_fine_net(other)
    again = [other_seg._segment_at(chunk, f.box, 8.0).masks for chunk, f in zip(chunks, first,
                                                                               strict=True)]
    k = int(taught >= 12)  # the taught frame's chunk
    agreement, trace, passed = check_adapted(again[k], first[k].masks)
    assert passed is used  # both branches are exercised
    how = found[0].adaptation
    assert (how.frame, how.area_px, how.steps, how.used) == (taught, int(areas[taught]), 9, used)
    assert how.agreement == pytest.approx(agreement, abs=1e-4)
    assert how.trace == pytest.approx(trace, abs=1e-4)
    assert all(f.adaptation == how for f in found)
    for mine, before, other_masks in zip(found, first, again, strict=True):
        assert mine.box == before.box
        assert not np.array_equal(other_masks, before.masks)  # the two passes differ
        np.testing.assert_array_equal(mine.masks, other_masks if used else before.masks)


@pytest.mark.parametrize(("used", "room", "first_calls", "adapted_calls"), [
    (True, None, 2, 2),  # each chunk once by the first pass, the taught chunk's check reused
    (False, None, 2, 1),  # the adaptation not used: the first pass's segmentations stand
    (False, 0, 4, 1),  # none kept (no room): the taught chunk and the other segmented again
])
def test_the_first_pass_is_not_repeated(trained, beating, monkeypatch, used, room,
                                        first_calls, adapted_calls):
    frames, _ = beating
    chunks = [frames[:12], frames[12:]]  # both within the first seconds at 8 frames/s
    plain = Segmenter(trained, threads=1, runtime="torch", self_adapt=False)
    net = plain.runtime._checkpoint(plain.runtime.path).build_model()
    monkeypatch.setattr(segment_module, "adapt_to_frame",
                        lambda model, info, *_, **__: Adapted(net, info, 1, 0.0, 0.0))
    monkeypatch.setattr(segment_module, "check_adapted", lambda *_: (1.0, 1.0, used))
    if room is not None:
        monkeypatch.setattr(segment_module, "KEEP_FIRST_BYTES", room)
    seg = Segmenter(trained, threads=1, runtime="torch", self_adapt=True, self_adapt_steps=1)
    calls = []
    real = Segmenter._segment_at

    def counted(self, chunk, box, fps):
        calls.append(self is seg)
        return real(self, chunk, box, fps)

    monkeypatch.setattr(Segmenter, "_segment_at", counted)
    found = [f for _, f in seg.segment_video(chunks, 8.0)]
    assert (calls.count(True), calls.count(False)) == (first_calls, adapted_calls)
    if not used:  # what stands is the network's own segmentation
        for mine, own in zip(found, plain.segment_video(chunks, 8.0), strict=True):
            np.testing.assert_array_equal(mine.region, own[1].region)


def test_a_video_without_a_mask_is_not_adapted(tmp_path, beating):
    frames, _ = beating
    blind = Segmenter(_folder(tmp_path / "m", 2), threads=1, runtime="torch", self_adapt=True,
                      threshold=1.0)
    assert all(f.adaptation is None for _, f in blind.segment_video([frames], 8.0))


def test_every_read_of_a_self_adapted_video_is_closed(trained, beating, monkeypatch):
    """The read that stops at the taught frame's chunk is closed before the network trains
    (a reader thread and its file are released), not whenever the collector gets to it."""
    frames, _ = beating
    opened, closed = [], []

    def chunks():
        opened.append(1)
        try:
            yield from (frames[:8], frames[8:16], frames[16:])
        finally:
            closed.append(1)

    plain = Segmenter(trained, threads=1, runtime="torch", self_adapt=False)
    net = plain.runtime._checkpoint(plain.runtime.path).build_model()
    open_while_training = []

    def fake_adapt(model, info, image, mask, **_):
        open_while_training.append(len(opened) - len(closed))
        return Adapted(net, info, 1, 0.0, 0.0)

    monkeypatch.setattr(segment_module, "adapt_to_frame", fake_adapt)
    seg = Segmenter(trained, threads=1, runtime="torch", self_adapt=True, self_adapt_steps=1)
    results = segment_module.Segmenter.segment_video(seg, chunks, 8.0)
    first = next(results)
    assert first[1].adaptation.frame < 16  # the taught frame's read stopped before the end
    list(results)
    assert open_while_training == [0]
    assert len(opened) >= 4
    assert len(closed) == len(opened)


def test_the_frame_taught_comes_from_the_first_seconds_only(trained, beating, monkeypatch):
    """At 0.5 frames/s the first 5 s are the first chunk (end-systole): the first pass
    stops there, and the frame taught is its largest mask although the next chunk, which
    starts at end-diastole, holds larger ones."""
    frames, _ = beating
    chunks = [frames[3:6], frames[8:20]]
    reads = []

    def counted():
        for index, chunk in enumerate(chunks):
            reads.append(index)
            yield chunk

    plain = Segmenter(trained, threads=1, runtime="torch", self_adapt=False)
    first = [found for _, found in plain.segment_video(chunks, 0.5)]
    areas = [f.masks.sum(axis=(1, 2)) for f in first]
    assert pseudo_frame(np.concatenate(areas)) >= len(chunks[0])  # in the whole: chunk 2
    net = plain.runtime._checkpoint(plain.runtime.path).build_model()
    seen = {}

    def fake_adapt(model, info, image, mask, **_):
        seen.update(image=image)
        return Adapted(net, info, 1, 0.0, 0.0)

    monkeypatch.setattr(segment_module, "adapt_to_frame", fake_adapt)
    seg = Segmenter(trained, threads=1, runtime="torch", self_adapt=True, self_adapt_steps=1)
    reads.clear()
    found = [f for _, f in seg.segment_video(counted, 0.5)]
    assert found[0].adaptation.frame == pseudo_frame(areas[0])
    np.testing.assert_array_equal(seen["image"], chunks[0][pseudo_frame(areas[0])])
    assert reads == [0, 1, 0, 0, 0, 1]  # locate: both; first pass, taught chunk: the first; final
