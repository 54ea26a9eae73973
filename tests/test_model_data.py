"""Training data sources: HeartSeg trees, image/mask folders, phantom folders, splits."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tifffile
from skimage.draw import ellipse

from medaka_heart.model.data import (
    FramePool,
    find_heartseg,
    find_pairs,
    find_synth,
    generate_sequence,
    load_pair_files,
    load_synth_video,
    split_by_sequence,
    toy_pairs,
)
from medaka_heart.model.samples import ViewSpec

SPEC = ViewSpec(size=16, coarse_size=32, context_size=32)

H, W = 48, 64  # small stand-in for 480 x 640


def _frame_and_mask(k):
    mask = np.zeros((H, W), dtype=bool)
    rr, cc = ellipse(24, 20 + k, 10, 14, shape=mask.shape)
    mask[rr, cc] = True
    gray = np.full((H, W), 60, np.uint8)
    gray[mask] = 200
    return gray, mask


def _write_heartseg_sequence(folder, name, frames, image_dir_suffix="_sample_gray"):
    images, masks = folder / f"{name}{image_dir_suffix}", folder / f"{name}_mask"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for k in frames:
        gray, mask = _frame_and_mask(k)
        tifffile.imwrite(images / f"{k:04d}.tif", gray)
        rgb = np.repeat(mask[..., None], 3, axis=-1).astype(np.uint8) * 255
        tifffile.imwrite(masks / f"{k:04d}_mask.tif", rgb, compression="lzw", photometric="rgb")


@pytest.fixture
def heartseg(tmp_path):
    root = tmp_path / "HeartSeg"
    _write_heartseg_sequence(root / "train_images", "fishA", [1, 2, 3, 5])
    _write_heartseg_sequence(root / "train_images", "fishB", [10, 11], "_samples")
    _write_heartseg_sequence(root / "test_images", "fishC", [7, 8, 9])
    # an image without a mask must be ignored (pairing by frame number)
    tifffile.imwrite(root / "train_images" / "fishA_sample_gray" / "0004.tif",
                     np.zeros((H, W), np.uint8))
    return root


def test_heartseg_layout_is_found_and_paired(heartseg):
    seqs = find_heartseg(heartseg)
    names = [s.name for s in seqs]
    assert names == ["train_images/fishA", "train_images/fishB", "test_images/fishC"]
    a = seqs[0]
    assert [p.name for p in a.images] == ["0001.tif", "0002.tif", "0003.tif", "0005.tif"]
    assert [p.name for p in a.masks] == ["0001_mask.tif", "0002_mask.tif", "0003_mask.tif",
                                         "0005_mask.tif"]
    assert [s.name for s in find_heartseg(heartseg, ["test_images"])] == ["test_images/fishC"]


def test_heartseg_masks_load_aligned_in_both_views(heartseg):
    seq = load_pair_files(find_heartseg(heartseg)[0], SPEC)
    assert len(seq) == 4
    assert seq.coarse.shape == (4, 32, 32)
    assert seq.context.shape == (4, 32, 32)
    assert seq.coarse_masks.dtype == bool
    # the mask marks the bright ellipse in both views (images normalised to 0..255)
    for img, msk in [(seq.coarse, seq.coarse_masks), (seq.context, seq.context_masks)]:
        assert img[msk].mean() > 230
        assert img[~msk].mean() < 40
    expected = cv2.resize(_frame_and_mask(5)[1].astype(np.float32), (32, 32)) > 0.5
    np.testing.assert_array_equal(seq.coarse_masks[3], expected)
    # the context view is centred on the heart, which fills about 1 / context_scale of it
    ys, xs = np.nonzero(seq.context_masks[3])
    assert abs(xs.mean() - 15.5) < 1.5
    assert abs(ys.mean() - 15.5) < 1.5
    assert 4 <= np.ptp(xs) + 1 <= 12


def test_heartseg_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="HeartSeg"):
        find_heartseg(tmp_path)
    (tmp_path / "train_images" / "x_sample_gray").mkdir(parents=True)
    with pytest.raises(ValueError, match="folder pairs"):
        find_heartseg(tmp_path)


def test_split_is_by_sequence_never_by_frame(heartseg):
    seqs = [load_pair_files(f, SPEC) for f in find_heartseg(heartseg)]
    train, val = split_by_sequence(seqs, 0.34, seed=0)
    assert len(val) == 1
    assert len(train) == 2
    assert {s.name for s in train}.isdisjoint({s.name for s in val})
    assert sorted(s.name for s in train + val) == sorted(s.name for s in seqs)
    again = split_by_sequence(seqs, 0.34, seed=0)
    assert [s.name for s in again[1]] == [s.name for s in val]


def test_generic_pair_folders(tmp_path):
    (tmp_path / "a" / "images").mkdir(parents=True)
    (tmp_path / "a" / "masks").mkdir(parents=True)
    for k in range(3):
        gray, mask = _frame_and_mask(k)
        cv2.imwrite(str(tmp_path / "a" / "images" / f"vid1_{k:03d}.png"), gray)
        cv2.imwrite(str(tmp_path / "a" / "masks" / f"vid1_{k:03d}_mask.png"),
                    mask.astype(np.uint8) * 255)
    (tmp_path / "b").mkdir()
    gray, mask = _frame_and_mask(4)
    tifffile.imwrite(tmp_path / "b" / "other_7.tif", gray)
    tifffile.imwrite(tmp_path / "b" / "other_7_mask.tif", mask.astype(np.uint8))
    seqs = find_pairs(tmp_path)
    assert [(s.name, len(s.images)) for s in seqs] == [("a/vid1", 3), ("b/other", 1)]
    loaded = load_pair_files(seqs[0], SPEC)
    assert loaded.context_masks.any()


def test_synth_folder(tmp_path):
    writer = cv2.VideoWriter(str(tmp_path / "v1.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (W, H))
    masks = []
    for k in range(4):
        gray, mask = _frame_and_mask(k)
        writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
        masks.append(mask.astype(np.uint8) * 255)
    writer.release()
    (tmp_path / "v1.truth").mkdir()
    tifffile.imwrite(tmp_path / "v1.truth" / "masks.tif", np.stack(masks), photometric="minisblack")
    found = find_synth(tmp_path)
    assert [f[0] for f in found] == ["v1"]
    seq = load_synth_video(*found[0], SPEC, every=2)
    assert seq.coarse.shape == (2, 32, 32)
    assert seq.coarse[seq.coarse_masks].mean() > 200


def test_pool_and_generated_sources_are_seeded():
    a = generate_sequence(toy_pairs(5), 3, SPEC, "toy")
    b = generate_sequence(toy_pairs(5), 3, SPEC, "toy")
    c = generate_sequence(toy_pairs(6), 3, SPEC, "toy")
    np.testing.assert_array_equal(a.context, b.context)
    assert not np.array_equal(a.context, c.context)
    assert a.coarse.shape == (3, 32, 32)
    pool = FramePool([a, c])
    assert len(pool) == 6
    assert 0 <= pool.pick(np.random.default_rng(0)) < 6
    assert pool.motion.shape == (2, 32, 32)  # one scene per sequence
    np.testing.assert_array_equal(pool.scene, [0, 0, 0, 1, 1, 1])
    assert FramePool([a, c], group_size=2).motion.shape == (4, 32, 32)  # runs of 2 frames
    with pytest.raises(ValueError, match="empty"):
        FramePool([])


def test_generated_views_are_cached_by_key(tmp_path):
    from medaka_heart.model.data import cached

    calls = []

    def make():
        calls.append(1)
        return generate_sequence(toy_pairs(1), 2, SPEC, "toy")

    a = cached(tmp_path, {"seed": 1}, make)
    b = cached(tmp_path, {"seed": 1}, make)
    cached(tmp_path, {"seed": 2}, make)
    assert len(calls) == 2
    assert b.name == a.name
    np.testing.assert_array_equal(a.context_masks, b.context_masks)
    assert len(list(tmp_path.glob("views_*.npz"))) == 2
