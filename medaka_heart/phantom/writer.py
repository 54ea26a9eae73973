"""Writing phantom sets to disk (the only module of the phantom package that writes files).

Layout of one video ``<name>`` in ``out_dir``::

    <name>.avi              MJPG (lossy, like real recordings); 8-bit BGR for stereo,
                            8-bit grayscale-as-BGR for hts (display-scaled)
    <name>.tif              hts always, stereo with tiff=True: multi-page zlib TIFF of the raw
                            frames (uint16 (T, H, W) or uint8 RGB (T, H, W, 3)); JSON description
                            with {"fps": ..., "pixel_size_um": ...}
    <name>.truth/
        masks.tif           uint8 0/255 ventricle masks, one page per frame, zlib
        frames.csv          per-frame truth, columns schema.FRAME_COLUMNS
        beats.csv           per-beat truth, columns schema.BEAT_COLUMNS
        meta.json           every generating parameter (preset, seed, law, ED/ES times, ...)

Every file is written under a temporary name in the same folder and moved into place with
os.replace, so a file either exists whole or not at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import cv2
import numpy as np
import tifffile
from tqdm import tqdm

from ..io.atomic import atomic_path
from .generate import Phantom, make_phantom
from .presets import PhantomPreset, load_preset

log = logging.getLogger(__name__)


def _display_8bit(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """uint16 frame -> uint8 with a fixed window [lo, hi] (the same for the whole video)."""
    scaled = (frame.astype(np.float32) - lo) * np.float32(255.0 / max(hi - lo, 1.0))
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def write_phantom(
    phantom: Phantom,
    out_dir: str | Path,
    name: str,
    *,
    tiff: bool = False,
    quality: int = 90,
    extra_meta: dict | None = None,
) -> Path:
    """Write one phantom as ``<name>.avi`` (+ ``.tif``) and ``<name>.truth/``; return the AVI.

    `quality` is the MJPG quality (0-100); `extra_meta` is merged into ``meta.json`` (e.g. the
    set's seed and the video's index). Long on purpose: one pass over the frames feeds the
    AVI, the TIFF and the truth files, each written whole under a temporary name.
    """
    out_dir = Path(out_dir)
    truth_dir = out_dir / f"{name}.truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    hts = phantom.params.setting == "hts"
    write_tiff = tiff or hts
    h, w = phantom.frame_shape
    avi = out_dir / f"{name}.avi"
    tif = out_dir / f"{name}.tif"
    meta = {"fps": float(phantom.fps), "pixel_size_um": float(phantom.pixel_size_um)}

    window = None
    if hts:  # one display window for the whole video, from the first frame
        first = phantom.image(0)
        window = tuple(float(v) for v in np.percentile(first, [0.1, 99.9]))

    tif_context = atomic_path(tif) if write_tiff else nullcontext(None)
    with atomic_path(avi) as avi_tmp, tif_context as tif_tmp:
        writer = cv2.VideoWriter(
            str(avi_tmp), cv2.VideoWriter.fourcc(*"MJPG"), float(phantom.fps), (w, h), True
        )
        if not writer.isOpened():
            raise OSError(f"{avi}: cannot open an MJPG video writer")
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, float(quality))

        def frames() -> Iterator[np.ndarray]:
            for i in range(phantom.n_frames):
                image = phantom.image(i)
                if window is not None:  # hts: 16-bit frames through the display window
                    gray = _display_8bit(image, *window)
                    writer.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
                else:
                    writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                yield image

        try:
            if tif_tmp is not None:  # write_tiff
                shape = (phantom.n_frames, h, w) if hts else (phantom.n_frames, h, w, 3)
                tifffile.imwrite(
                    tif_tmp,
                    data=frames(),
                    shape=shape,
                    dtype=np.uint16 if hts else np.uint8,
                    photometric="minisblack" if hts else "rgb",
                    compression="zlib",
                    predictor=hts,  # horizontal differencing: smaller 16-bit files
                    metadata=meta,
                )
            else:
                for _ in frames():
                    pass
        finally:
            writer.release()

    masks_tif = truth_dir / "masks.tif"
    with atomic_path(masks_tif) as tmp:
        tifffile.imwrite(
            tmp,
            data=(phantom.mask(i).astype(np.uint8) * 255 for i in range(phantom.n_frames)),
            shape=(phantom.n_frames, h, w),
            dtype=np.uint8,
            photometric="minisblack",
            compression="zlib",
            metadata=meta,
        )
    tables = {"frames.csv": phantom.frame_table(), "beats.csv": phantom.beat_table()}
    for table_name, table in tables.items():
        with atomic_path(truth_dir / table_name) as tmp:
            table.to_csv(tmp, index=False, float_format="%.9g")
    with atomic_path(truth_dir / "meta.json") as tmp:
        full_meta = {**phantom.meta(), "name": name, **(extra_meta or {})}
        tmp.write_text(json.dumps(full_meta, indent=1), encoding="utf-8")
    return avi


def write_synth_set(
    out_dir: str | Path,
    n: int,
    seed: int,
    preset: str | Path | PhantomPreset = "typical",
    *,
    tiff: bool = False,
    progress: bool = True,
    quality: int = 90,
) -> list[Path]:
    """Write `n` phantom videos with their truth into `out_dir`.

    Video i is named ``<preset>_s<seed>_<i:03d>`` and drawn from the seed sequence
    ``(seed, i)``, so any one video can be regenerated alone.

    Parameters
    ----------
    out_dir : path
        Created if missing.
    n : int
        Number of videos.
    seed : int
        Seed of the set.
    preset : str, Path or PhantomPreset
        Preset name ("clean", "typical", "hard", "hts") or a TOML file.
    tiff : bool
        Also write the raw frames as a multi-page TIFF (always for the 16-bit hts setting).
    progress : bool
        Show a progress bar.
    quality : int
        MJPG quality of the AVIs, 0-100.

    Returns
    -------
    list of Path
        The AVI of each video, in order.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    preset_obj = preset if isinstance(preset, PhantomPreset) else load_preset(preset)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in tqdm(range(n), desc=f"phantoms ({preset_obj.name})", disable=not progress):
        phantom = make_phantom(preset_obj, seed=video_seed(seed, i))
        name = f"{preset_obj.name}_s{seed}_{i:03d}"
        extra = {"set_seed": seed, "set_index": i, "preset_source": str(preset)}
        paths.append(
            write_phantom(phantom, out_dir, name, tiff=tiff, quality=quality, extra_meta=extra)
        )
        log.info("wrote %s (%d frames)", name, phantom.n_frames)
    return paths


def video_seed(seed: int, index: int) -> int:
    """The seed of video `index` of a set seeded with `seed` (stable across versions)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1)
