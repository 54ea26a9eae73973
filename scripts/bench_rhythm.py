"""Rhythm benchmark: heart rate and beat timing of `medaka-heart analyze`, per video, against
the truth, on held-out phantoms and on real-appearance videos.

    python scripts/bench_rhythm.py --real ../shared/real --json docs/benchmark_rhythm.json
    python scripts/bench_rhythm.py --quick --real ../shared/real      # 3 phantoms per preset

Sets:

- phantoms: the held-out sets of `benchmark.py` (presets typical, hard, hts; seeds that
  training never uses); truth = the generating law's beats;
- real appearance, built with `animate_frame.py` from a folder laid out as
  ``shared/real`` (``--real``): the real HeartSeg frame beating with each of the two real
  hand-drawn outline sequences (looped) at 10, 15 and 30 frames/s, 10 s (and a 21-frame
  clip at 15 frames/s), and with a made-up contraction at 90 and 180 bpm; truth = the beats
  of the video's own truth masks by the measurement core (two beats per 21-frame outline
  loop: `LOOP_FRAMES_PER_BEAT`);
- real recordings: the FEHAT 96-well recording (reference about 170 bpm from FEHAT and an
  FFT, no manual truth) and the zebrafish close-up at a nominal 30 frames/s (reference 23.7
  frames per beat from a spectral estimate, no manual truth).

Per video: the error of the headline `hr_bpm` (fused beat train) and of the two one-signal
rates beside it (`hr_bpm_segmentation`, `hr_bpm_intensity`), the per-beat rate error and the
per-beat timing error (`medaka_heart.evaluate_rhythm`), the source and the QC verdicts.
Nothing here is fitted: the numbers are measurements of the shipped analysis.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchmark  # noqa: E402  (the phantom sets are shared with it)

from medaka_heart.config import CycleConfig  # noqa: E402
from medaka_heart.cycles import detect_cycles  # noqa: E402
from medaka_heart.evaluate_rhythm import rate_error_pct, rhythm_errors, true_beat_times  # noqa: E402
from medaka_heart.io.masks import mask_chunks  # noqa: E402
from medaka_heart.morphometry import measure_masks  # noqa: E402
from medaka_heart.rhythm import reference_times  # noqa: E402

log = logging.getLogger("bench_rhythm")
SEQUENCE_FPS = (10.0, 15.0, 30.0)
MADE_UP_BPM = (90.0, 180.0)
FEHAT_REFERENCE_BPM = 170.0
ZEBRAFISH_FRAMES_PER_BEAT, ZEBRAFISH_FPS = 23.7, 30.0
# Each real outline sequence holds two beats in its 21 frames (its hand-drawn volumes peak
# twice); looped, the seam makes every 21st frame repeat exactly, so the truth's own period
# search would take the loop for the beat: the truth beats are looked for near 10.5 frames.
LOOP_FRAMES_PER_BEAT = 10.5


def medaka_heart(*args: str) -> None:
    """Run the CLI in a fresh process, as a user does."""
    cmd = [sys.executable, "-m", "medaka_heart", "analyze", *args, "--workers", "1",
           "--no-plots", "--force"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def mask_truth_times(masks: Path, fps: float, frames_per_beat: float | None = None
                     ) -> np.ndarray:
    """ES-reference beat times (s) of a truth mask stack, by the measurement core; with
    `frames_per_beat`, beats are looked for within 0.7-1.4 x that rate only."""
    tables, state, first = [], None, 0
    for chunk in mask_chunks(masks, 256, None):
        table, state = measure_masks(chunk, 1.0, first_frame=first, previous=state)
        tables.append(table)
        first += len(chunk)
    volume = pd.concat(tables)["volume_pl"].to_numpy()
    config = CycleConfig()
    if frames_per_beat is not None:
        rate = 60.0 * fps / frames_per_beat
        config = CycleConfig(hr_min_bpm=0.7 * rate, hr_max_bpm=1.4 * rate)
    found = detect_cycles(volume, fps, config)
    return reference_times(found.ed_times_s, found.es_times_s)


def sequences(real: Path, work: Path) -> dict[str, Path]:
    """The lateral outline folder split into its runs of consecutive frame numbers."""
    files = sorted((real / "heartseg_hatchling" / "lateral_mask_sequences").glob("*_mask.tif"))
    runs: list[list[Path]] = []
    for f in files:
        number = int(f.name.split("_")[0])
        if runs and number == int(runs[-1][-1].name.split("_")[0]) + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    out = {}
    for run in runs:
        folder = work / f"sequence_{run[0].name.split('_')[0]}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in run:
            shutil.copy2(f, folder / f.name)
        out[folder.name] = folder
    return out


def animate(real: Path, out: Path, *extra: str) -> Path:
    frame = real / "heartseg_hatchling" / "frame_0001.tif"
    mask = real / "heartseg_hatchling" / "frame_0001_mask.tif"
    subprocess.run([sys.executable, str(REPO / "scripts" / "animate_frame.py"), str(frame),
                    str(mask), "-o", str(out), *extra], check=True, capture_output=True)
    return out


def real_appearance_videos(real: Path, work: Path) -> list[dict]:
    """Animated real frames: name, video, truth masks, fps."""
    videos = []
    for name, folder in sequences(real, work / "outlines").items():
        for fps in SEQUENCE_FPS:
            out = animate(real, work / f"{name}_{fps:g}fps", "--fps", f"{fps:g}", "--seconds",
                          f"{10 * fps / 15:g}", "--mask-sequence", str(folder))
            videos.append({"name": f"{name} loop, {fps:g} fps", "fps": fps, "dir": out,
                           "frames_per_beat": LOOP_FRAMES_PER_BEAT})
        out = animate(real, work / f"{name}_clip", "--fps", "15", "--seconds", "1.4",
                      "--mask-sequence", str(folder))
        videos.append({"name": f"{name} 21-frame clip", "fps": 15.0, "dir": out,
                       "frames_per_beat": LOOP_FRAMES_PER_BEAT})
    for bpm in MADE_UP_BPM:
        out = animate(real, work / f"made_up_{bpm:g}", "--fps", "15", "--seconds", "10",
                      "--hr-bpm", f"{bpm:g}")
        videos.append({"name": f"made-up beat {bpm:g} bpm, 15 fps", "fps": 15.0, "dir": out})
    for v in videos:
        v["video"] = v["dir"] / "frame_0001.avi"
        v["masks"] = v["dir"] / "frame_0001_mask.tif"
    return videos


def score_row(name: str, kind: str, summary: pd.Series, beats: pd.DataFrame,
              true_times: np.ndarray | None, true_bpm: float, fps: float) -> dict:
    row = {"set": kind, "video": name, "hr_source": summary.get("hr_source"),
           "true_hr_bpm": true_bpm, "hr_bpm": summary.get("hr_bpm"),
           "hr_err_pct": rate_error_pct(summary.get("hr_bpm", np.nan), true_bpm),
           "segmentation_hr_err_pct": rate_error_pct(summary.get("hr_bpm_segmentation", np.nan),
                                                     true_bpm),
           "intensity_hr_err_pct": rate_error_pct(summary.get("hr_bpm_intensity", np.nan),
                                                  true_bpm),
           "qc_rhythm_pass": summary.get("qc_rhythm_pass"),
           "qc_dimensions_pass": summary.get("qc_dimensions_pass")}
    if true_times is not None and "beat_time_s" in beats:
        errors = rhythm_errors(beats["beat_time_s"], true_times, fps)
        row.update(beat_hr_err_pct_median=errors.beat_hr_err_pct_median,
                   timing_err_frames_median=errors.timing_err_frames_median,
                   n_beats=errors.n_beats_pred, n_beats_true=errors.n_beats_true)
    return row


def read_result(out: Path, name: str) -> tuple[pd.Series, pd.DataFrame]:
    summary = pd.read_csv(out / "summary.csv").set_index("video").loc[name]
    if summary["status"] == "failed":
        raise RuntimeError(f"{name}: {summary['error']}")
    return summary, pd.read_csv(out / name / "beats.csv")


def phantom_rows(work: Path, presets: list[str], n_videos: int, duration_s: float) -> list[dict]:
    rows = []
    for preset in presets:
        videos = benchmark.ensure_set(work / "sets" / preset, preset, n_videos, duration_s)
        out = work / "pred" / preset
        for v in videos:
            medaka_heart(str(v["path"]), "-o", str(out), "--pixel-size", str(v["pixel_size_um"]))
            truth = pd.read_csv(v["truth"] / "beats.csv")
            summary, beats = read_result(out, Path(v["path"]).stem)
            true_bpm = 60.0 / np.nanmean(truth["rr_s"])
            rows.append(score_row(v["name"], f"phantom {preset}", summary, beats,
                                  true_beat_times(truth), true_bpm, v["fps"]))
            log.info("%s", rows[-1])
    return rows


def real_rows(real: Path, work: Path) -> list[dict]:
    rows = []
    for v in real_appearance_videos(real, work / "animated"):
        out = v["dir"] / "pred"
        medaka_heart(str(v["video"]), "-o", str(out), "--fps", f"{v['fps']:g}")
        summary, beats = read_result(out, "frame_0001")
        truth = mask_truth_times(v["masks"], v["fps"], v.get("frames_per_beat"))
        true_bpm = 60.0 / np.diff(truth).mean() if truth.size > 1 else np.nan
        rows.append(score_row(v["name"], "real appearance", summary, beats, truth, true_bpm,
                              v["fps"]))
        log.info("%s", rows[-1])
    out = work / "fehat"
    medaka_heart(str(real / "fehat_medaka_96well"), "-o", str(out))
    summary = pd.read_csv(out / "summary.csv").iloc[0]
    rows.append(score_row("FEHAT 96-well recording (reference ~170 bpm)", "real recording",
                          summary, pd.DataFrame(), None, FEHAT_REFERENCE_BPM, summary["fps"]))
    out = work / "zebrafish"
    medaka_heart(str(real / "zebrafish_heart_closeup"), "-o", str(out), "--fps",
                 f"{ZEBRAFISH_FPS:g}")
    summary = pd.read_csv(out / "summary.csv").iloc[0]
    rows.append(score_row("zebrafish close-up (reference 23.7 frames/beat)", "real recording",
                          summary, pd.DataFrame(), None,
                          60.0 * ZEBRAFISH_FPS / ZEBRAFISH_FRAMES_PER_BEAT, ZEBRAFISH_FPS))
    return rows


def markdown(rows: list[dict]) -> str:
    """Per set: videos, median and max of each rate error, per-beat errors, QC passes."""
    table = pd.DataFrame(rows)
    lines = ["| set | videos | HR error median / max (%) | masks-only HR error median / max (%) "
             "| model-free HR error median / max (%) | per-beat HR error, median (%) "
             "| beat timing error, median (frames) | rhythm QC pass |",
             "|---|---|---|---|---|---|---|---|"]

    def mm(col: pd.Series) -> str:
        col = col.astype(float)
        return "-" if col.isna().all() else f"{col.median():.2f} / {col.max():.2f}"

    for name, part in table.groupby("set", sort=False):
        per_beat = part.get("beat_hr_err_pct_median", pd.Series(dtype=float)).astype(float)
        timing = part.get("timing_err_frames_median", pd.Series(dtype=float)).astype(float)
        lines.append(
            f"| {name} | {len(part)} | {mm(part['hr_err_pct'])} | "
            f"{mm(part['segmentation_hr_err_pct'])} | {mm(part['intensity_hr_err_pct'])} | "
            f"{'-' if per_beat.isna().all() else f'{per_beat.median():.2f}'} | "
            f"{'-' if timing.isna().all() else f'{timing.median():.2f}'} | "
            f"{int(part['qc_rhythm_pass'].astype(bool).sum())}/{len(part)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=None,
                        help="folder laid out as shared/real (real-appearance and real rows)")
    parser.add_argument("--quick", action="store_true", help="3 phantoms of 6 s per preset")
    parser.add_argument("--presets", nargs="*", default=list(benchmark.PRESETS))
    parser.add_argument("--work", type=Path, default=Path("bench_rhythm_work"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = benchmark.QUICK if args.quick else benchmark.FULL
    rows = phantom_rows(args.work, args.presets, size["n_videos"], size["duration_s"])
    if args.real is not None:
        rows += real_rows(args.real, args.work)
    sys.stdout.write(markdown(rows) + "\n\n")
    table = pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}")
    sys.stdout.write(table + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(benchmark._clean(rows), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
