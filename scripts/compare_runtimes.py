"""Same masks from OpenVINO and ONNX Runtime as from torch? `analyze` each video with
`[segment] runtime` torch (the reference) and each ONNX engine installed (openvino, onnx: the
shipped model.onnx, in float32), and with OpenVINO running the fine pass in int8 (`openvino
+int8`: the model folder's checked model.int8.xml, the default where it exists), and compare
the masks (Dice over the whole video) and the summaries.

    python scripts/compare_runtimes.py --real ../shared/real --phantoms 2

Videos: with --real, the real-appearance videos of `bench_rhythm.py` (the real HeartSeg frame
beating with its real outline sequences, and with a made-up beat) and the FEHAT and zebrafish
recordings; with --phantoms N, N held-out phantoms of typical, hts and hard (`benchmark.py`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rhythm
import benchmark

from medaka_heart.runtime_onnx import ENGINES, installed_engines

INT8 = "+int8"  # a variant's suffix: the engine with the fine pass in int8


def analyse(video: Path, fps: float | None, out: Path, runtime: str) -> tuple[pd.Series, Path]:
    """summary row and masks.tif of `analyze` with the given runtime (an engine, "torch", or
    an engine + INT8)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    config = out.parent / f"{runtime}.toml"
    engine = runtime.removesuffix(INT8)
    int8 = "true" if runtime.endswith(INT8) else "false"
    config.write_text(f'[segment]\nruntime = "{engine}"\nint8 = {int8}\n')
    cmd = [sys.executable, "-m", "medaka_heart", "analyze", str(video), "-o", str(out),
           "--config", str(config), "--workers", "1", "--no-plots", "--force", "--save-masks",
           "--no-progress"] + (["--fps", f"{fps:g}"] if fps else [])
    subprocess.run(cmd, check=True, capture_output=True)
    row = pd.read_csv(out / "summary.csv").iloc[0]
    return row, out / str(row["video"]) / "masks.tif"


def compare(name: str, video: Path, fps: float | None, work: Path, engines: list[str]
            ) -> list[dict]:
    """One row per engine: its masks' Dice against torch's, and how the summaries differ."""
    a, masks_a = analyse(video, fps, work / "torch", "torch")
    ma = tifffile.imread(masks_a) > 0
    rows = []
    for engine in engines:
        b, masks_b = analyse(video, fps, work / engine, engine)
        mb = tifffile.imread(masks_b) > 0
        total = int(ma.sum() + mb.sum())
        rows.append({"video": name, "engine": engine,
                     "dice": 2 * float((ma & mb).sum()) / total if total else 1.0,
                     "hr_diff_bpm": abs(a["hr_bpm"] - b["hr_bpm"]),
                     "ef_diff_points": abs(a["ef_pct"] - b["ef_pct"]),
                     "same_qc": a["qc_pass"] == b["qc_pass"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, help="folder laid out like shared/real")
    parser.add_argument("--phantoms", type=int, default=0, help="phantoms per preset")
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES),
                        default=installed_engines(), help="ONNX engines to compare with torch")
    args = parser.parse_args(argv)
    videos: list[tuple[str, Path, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.real is not None:
            for v in bench_rhythm.real_appearance_videos(args.real, work / "animated"):
                videos.append((v["name"], v["video"], v["fps"]))
            videos.append(("FEHAT 96-well recording", args.real / "fehat_medaka_96well", None))
            videos.append(("zebrafish close-up", args.real / "zebrafish_heart_closeup", 30.0))
        for preset in ("typical", "hts", "hard") if args.phantoms else ():
            for v in benchmark.ensure_set(work / "sets" / preset, preset, args.phantoms, 6.0):
                videos.append((v["name"], Path(v["path"]), v["fps"]))
        if not videos:
            parser.error("give --real DIR and/or --phantoms N")
        variants = args.engines + ["openvino" + INT8] * ("openvino" in args.engines)
        rows = [row for k, (name, video, fps) in enumerate(videos)
                for row in compare(name, video, fps, work / f"run{k}", variants)]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    for engine, own in table.groupby("engine", sort=False):
        print(f"{engine} against torch, {len(own)} videos: Dice min {own.dice.min():.6f}, HR "
              f"differs on {int((own.hr_diff_bpm > 0).sum())}, largest EF difference "
              f"{np.nanmax(own.ef_diff_points.to_numpy(float), initial=0.0):.2g} points, QC "
              f"the same on {int(own.same_qc.sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
