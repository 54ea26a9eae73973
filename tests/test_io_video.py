"""Readers read every supported format, with frame rate and pixel size from metadata."""

import cv2
import numpy as np
import pytest
import tifffile

from medaka_heart.io.masks import MaskStackWriter, mask_chunks
from medaka_heart.io.video import VideoError, frames_per_chunk, open_video, read_all
from medaka_heart.preprocess import to_gray


def moving_square(n=12, h=48, w=64, rgb=False, dtype=np.uint8):
    frames = np.zeros((n, h, w, 3) if rgb else (n, h, w), dtype=dtype)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    for i in range(n):
        frames[i, 10:30, 5 + 3 * i : 20 + 3 * i] = top
    return frames


@pytest.mark.parametrize(("suffix", "fourcc"), [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_container_video(tmp_path, suffix, fourcc):
    frames = moving_square(rgb=True)
    path = tmp_path / f"clip{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 17.0, (64, 48))
    for f in frames:
        writer.write(f)
    writer.release()
    reader = open_video(path)
    assert reader.info.fps == pytest.approx(17.0)
    assert reader.info.fps_source == "container"
    chunks = list(reader.chunks(5))
    assert [len(c) for c in chunks] == [4, 4, 4]  # at most 5, as even as that allows
    data = np.concatenate(chunks)
    assert data.shape == (12, 48, 64, 3)
    assert np.abs(data.astype(int) - frames).mean() < 10  # lossy codec, same picture
    gray = np.concatenate(list(reader.chunks(5, gray=True)))  # decoded straight to luminance
    assert gray.shape == (12, 48, 64)
    assert gray.dtype == np.uint8
    assert np.abs(gray - to_gray(data)).max() <= 1  # the same luminance, rounded


@pytest.mark.parametrize("compression", [None, "lzw", "zlib"])
@pytest.mark.parametrize(("rgb", "dtype"),
                         [(False, np.uint8), (False, np.uint16), (True, np.uint8)])
def test_multipage_tiff(tmp_path, compression, rgb, dtype):
    frames = moving_square(rgb=rgb, dtype=dtype)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, compression=compression, photometric="rgb" if rgb else None,
                     metadata={"fps": 12.5, "pixel_size_um": 2.5})
    reader = open_video(path)
    assert reader.info.n_frames == 12
    assert reader.info.fps == 12.5
    assert reader.info.fps_source == "metadata"
    assert reader.info.pixel_size_um == 2.5
    np.testing.assert_array_equal(np.concatenate(list(reader.chunks(5))), frames)
    gray = np.concatenate(list(reader.chunks(5, gray=True)))
    assert gray.shape == (12, 48, 64)
    assert gray.dtype == dtype
    assert np.abs(gray.astype(float) - to_gray(frames)).max() <= 1


def test_ome_tiff_metadata(tmp_path):
    frames = moving_square(dtype=np.uint16)
    path = tmp_path / "movie.ome.tif"
    tifffile.imwrite(path, frames[:, None, None], ome=True, compression="zlib",
                     metadata={"axes": "TCZYX", "TimeIncrement": 40.0, "TimeIncrementUnit": "ms",
                               "PhysicalSizeX": 0.75, "PhysicalSizeXUnit": "µm"})
    reader = open_video(path)
    assert reader.info.fps == pytest.approx(25.0)
    assert reader.info.pixel_size_um == pytest.approx(0.75)
    np.testing.assert_array_equal(np.concatenate(list(reader.chunks(4))), frames)


def test_imagej_tiff_metadata(tmp_path):
    frames = moving_square()
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TYX", "finterval": 0.1, "unit": "micron"})
    info = open_video(path).info
    assert info.fps == pytest.approx(10.0)
    assert info.pixel_size_um == pytest.approx(0.5)


def test_tiff_with_zero_fps_is_treated_as_unknown(tmp_path):
    """A rate of 0 in the metadata is no rate: --fps can still give it (see test_bad_inputs)."""
    path = tmp_path / "zero.tif"
    tifffile.imwrite(path, moving_square(), metadata={"fps": 0})
    info = open_video(path).info
    assert info.fps is None
    assert info.fps_source == "none"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_frame_folder_natural_order(tmp_path, suffix):
    frames = moving_square(n=11)
    for i, f in enumerate(frames):
        name = tmp_path / f"frame_{i}{suffix}"  # frame_10 must come after frame_9
        if suffix == ".tif":
            tifffile.imwrite(name, f)
        else:
            cv2.imwrite(str(name), f)
    reader = open_video(tmp_path)
    assert reader.info.n_frames == 11
    assert reader.info.fps is None
    data = np.concatenate(list(reader.chunks(4)))
    tol = 20 if suffix == ".jpg" else 0
    assert np.abs(data.astype(int) - frames).max() <= tol or suffix == ".jpg"
    centres = [np.nonzero(d > 128)[1].mean() for d in data]
    assert np.all(np.diff(centres) > 0)


def test_lzw_rgb_heartseg_mask(tmp_path):
    """A HeartSeg-style mask: RGB 0/255, LZW, 640x480; any nonzero pixel is ventricle."""
    mask = np.zeros((480, 640, 3), dtype=np.uint8)
    mask[100:200, 300:420] = 255
    folder = tmp_path / "seq_mask"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"{i:04d}_mask.tif", mask, compression="lzw", photometric="rgb")
    chunks = list(mask_chunks(folder, 2, expected=(3, 480, 640)))
    stack = np.concatenate(chunks)
    assert stack.dtype == bool
    assert stack.shape == (3, 480, 640)
    assert stack[0].sum() == 100 * 120


def test_mask_stack_round_trip_and_size_check(tmp_path):
    masks = moving_square() > 0
    with MaskStackWriter(tmp_path / "masks.tif") as writer:
        writer.write(masks[:5])
        writer.write(masks[5:])
    back = tifffile.imread(tmp_path / "masks.tif")
    assert back.dtype == np.uint8
    assert set(np.unique(back)) <= {0, 255}
    np.testing.assert_array_equal(back > 0, masks)
    with pytest.raises(VideoError, match="masks are 64x48 px but the video is 640x480"):
        next(mask_chunks(tmp_path / "masks.tif", 4, expected=(12, 480, 640)))
    with pytest.raises(VideoError, match="12 masks for a video of 16 frames"):
        next(mask_chunks(tmp_path / "masks.tif", 4, expected=(16, 48, 64)))
    with pytest.raises(VideoError, match="12 masks for a video of 11 frames"):
        next(mask_chunks(tmp_path / "masks.tif", 4, expected=(11, 48, 64)))
    assert next(mask_chunks(tmp_path / "masks.tif", 4, expected=(13, 48, 64))).shape[0] == 4


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.avi", None, "no such file"),
        ("empty.avi", b"", "empty file"),
        ("text.avi", b"this is not a video\n" * 20, "not a readable video|no frame"),
        ("text.tif", b"this is not a tiff\n" * 20, "not a readable TIFF"),
        ("clip.xyz", b"123", "unknown video type"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError, match=message) as info:
        read_all(path)
    assert str(info.value).startswith(str(path))


def test_truncated_avi_is_reported(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for f in moving_square(n=40, rgb=True):
        writer.write(f)
    writer.release()
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.avi"):
        read_all(cut)


def test_tiff_with_one_series_per_page(tmp_path):
    """Some writers store every frame as its own series; all pages are still the frames."""
    frames = moving_square()
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for f in frames:
            tif.write(f, compression="zlib")
    reader = open_video(path)
    assert reader.info.n_frames == 12
    np.testing.assert_array_equal(np.concatenate(list(reader.chunks(5))), frames)


@pytest.mark.parametrize(("shape", "most", "n_frames", "expected"), [
    ((480, 640), 64, None, 64),  # frame count unknown: the cap
    ((480, 640), 64, 64, 64),
    ((480, 640), 64, 65, 33),  # 33 + 32, not 64 + 1
    ((480, 640), 64, 200, 50),  # 4 x 50
    ((900, 900), 64, 64, 32),  # at most 62 frames of 900x900 fit: 2 x 32, not 62 + 2
    ((3000, 4000), 64, 10, 4),  # at most 4 large frames at a time
    ((6000, 9000), 64, 10, 1),  # one huge frame at a time
])
def test_chunks_are_as_even_as_the_cap_allows(shape, most, n_frames, expected):
    assert frames_per_chunk(*shape, most, n_frames) == expected
