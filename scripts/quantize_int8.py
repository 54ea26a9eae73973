"""Quantize a model folder's fine network to int8 for OpenVINO (model.int8.xml), checked.

    python scripts/quantize_int8.py medaka_heart/weights            # the shipped model
    python scripts/quantize_int8.py runs/mine/model --videos 3 --work /tmp/q

Needs NNCF (the ``export`` extra) and the folder's checked ``model.onnx``
(`scripts/export_onnx.py`). The fine pass's inputs (each frame's crop, located by the float
network, with its beat planes) of ``--videos`` phantom videos per preset (typical, hard, hts;
seed CALIBRATION_SEED) calibrate the quantization (NNCF post-training quantization, its
"mixed" preset: asymmetric activations; the first and last convolutions stay float32: the
closest to float of the variants tried on real recordings). Those of
as many other videos (seed CHECK_SEED) check it: the int8 network's masks must agree with
torch's, pooled over every check frame, to a Dice of at least
`runtime_int8.INT8_MIN_DICE`. Neither seed is one of the benchmark's. Only then are
``model.int8.xml``/``.bin`` and their check stamp (``model.int8.check.json``) written into the
folder; `analyze` then runs the fine pass over every frame in int8 (`[segment] int8`).
Re-run after changing model.pt: a stamp made for other weights is not used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.special import expit

from medaka_heart.config import IOConfig, SegmentConfig
from medaka_heart.io.video import open_video
from medaka_heart.model.folder import MODEL_FILE
from medaka_heart.model.inputs import FINE, network_input
from medaka_heart.phantom import write_synth_set
from medaka_heart.preprocess import crop_frames
from medaka_heart.runtime import ModelRuntime
from medaka_heart.runtime_int8 import INT8_MIN_DICE, int8_files, int8_network, write_int8_stamp
from medaka_heart.runtime_onnx import ONNX_FILE, openvino_runner
from medaka_heart.segment import Segmenter

PRESETS = ("typical", "hard", "hts")
CALIBRATION_SEED, CHECK_SEED = 770_001, 770_101  # not the benchmark's (9001xx-9005xx)
BATCH = 4  # images per calibration item
EVERY = 2  # every n-th frame's input is kept


def fine_inputs(segmenter: Segmenter, folder: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(images (N, S, S), beat planes (N, 2, S, S) or None) of every EVERY-th frame of each
    video in `folder`, as the fine pass sees them (crops located by `segmenter`)."""
    runtime, chunk = segmenter.runtime, IOConfig().chunk_frames
    found = []
    for video in sorted(folder.glob("*.avi")):
        reader = open_video(video)
        boxes = segmenter.locator.locate_video(lambda r=reader: r.chunks(chunk, gray=True),
                                               reader.info.fps)
        for frames, box in zip(reader.chunks(chunk, gray=True), boxes, strict=True):
            if box is None:
                continue
            images, beat = runtime.fine_input(crop_frames(frames, *box)[0])
            keep = slice(None, None, EVERY)
            found.append((images[keep], None if beat is None else beat[keep]))
    return found


def pooled_dice(a: np.ndarray, b: np.ndarray) -> float:
    """2 |A & B| / (|A| + |B|) over all pixels of two mask stacks (1.0 where both empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder (model.pt, model.onnx)")
    parser.add_argument("--videos", type=int, default=2, help="phantom videos per preset, each "
                        "for calibration and for the check")
    parser.add_argument("--work", type=Path, default=None, help="folder for the phantoms "
                        "(default: a temporary one)")
    args = parser.parse_args(argv)
    onnx = args.model / ONNX_FILE
    if not (args.model / MODEL_FILE).is_file() or not onnx.is_file():
        sys.exit(f"{args.model}: needs {MODEL_FILE} and {ONNX_FILE} (scripts/export_onnx.py)")
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        sys.exit(f"needs NNCF and OpenVINO (pip install -e '.[export]'): {exc}")

    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        sets = {}
        for role, seed in (("calibration", CALIBRATION_SEED), ("check", CHECK_SEED)):
            for preset in PRESETS:
                folder = work / role / preset
                if not any(folder.glob("*.avi")):
                    write_synth_set(folder, args.videos, seed, preset, progress=False)
                sets.setdefault(role, []).append(folder)
        segmenter = Segmenter(args.model, int8=False)  # located by the float network
        runtime = segmenter.runtime
        channels = runtime.info.architecture.in_channels
        inputs = {role: [x for folder in folders for x in fine_inputs(segmenter, folder)]
                  for role, folders in sets.items()}
        items = [network_input(images[i:i + BATCH], channels, FINE, None,
                               None if beat is None else beat[i:i + BATCH])
                 for images, beat in inputs["calibration"]
                 for i in range(0, len(images), BATCH)]
        print(f"calibrating on {sum(len(x) for x in items)} fine-pass inputs "
              f"({args.videos} videos x {', '.join(PRESETS)}, seed {CALIBRATION_SEED})")
        model = ov.Core().read_model(str(onnx))
        convolutions = [op.get_friendly_name() for op in model.get_ordered_ops()
                        if op.get_type_name() == "Convolution"]
        quantized = nncf.quantize(  # the first and last convolutions kept in float32
            model, nncf.Dataset(items), subset_size=len(items),
            preset=nncf.QuantizationPreset.MIXED,
            ignored_scope=nncf.IgnoredScope(names=[convolutions[0], convolutions[-1]]))
        staged = Path(tempfile.mkdtemp(prefix=".int8-", dir=args.model))  # same disk
        xml, binary = int8_files(staged)
        ov.save_model(quantized, str(xml))
        run = openvino_runner(xml, runtime.threads)
        reference = ModelRuntime(SegmentConfig(model=str(args.model), runtime="torch"))
        ours, theirs = [], []
        for images, beat in inputs["check"]:
            theirs.append(reference.predict(images, FINE, beat=beat) > runtime.threshold)
            x = network_input(images, channels, FINE, None, beat)
            ours.append(expit(run(x)[:, 0]) > runtime.threshold)
        dice = pooled_dice(np.concatenate(ours), np.concatenate(theirs))
        frames = sum(len(x) for x in ours)
        print(f"check: Dice {dice:.4f} with torch's masks over {frames} fine-pass inputs of "
              f"other videos (seed {CHECK_SEED}); at least {INT8_MIN_DICE} is needed")
        if not dice >= INT8_MIN_DICE:
            shutil.rmtree(staged)
            print(f"{args.model}: int8 network not written", file=sys.stderr)
            return 1
        for staged_file, final in zip((xml, binary), int8_files(args.model), strict=True):
            os.replace(staged_file, final)
        shutil.rmtree(staged)
    write_int8_stamp(args.model, args.model / MODEL_FILE, dice,
                     f"{frames} fine-pass inputs of {args.videos} phantom videos per preset "
                     f"({', '.join(PRESETS)}), seed {CHECK_SEED}")
    if int8_network(args.model, args.model / MODEL_FILE, None) is None:
        print(f"{args.model}: written, but not usable here", file=sys.stderr)
        return 1
    print(f"{int8_files(args.model)[0]}: written and stamped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
