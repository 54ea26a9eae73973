"""`medaka-heart analyze`: videos in, per-video tables and a run summary out."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import RUNTIMES


@click.command()
@click.argument("inputs", nargs=-1, required=False)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (one subfolder per video, summary.csv).")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CSV with a 'path' column (relative to the manifest's folder), "
                                 "an optional 'masks' column and any metadata columns, carried "
                                 "into every output row.")
@click.option("--masks", "masks", multiple=True, type=click.Path(path_type=Path),
              help="Ventricle masks to measure instead of segmenting (stack or folder; any "
                   "nonzero pixel is ventricle). Give once per input, in the same order.")
@click.option("--fps", type=click.FloatRange(0, 10_000, min_open=True), default=None,
              help="Frame rate; overrides the file's.")
@click.option("--pixel-size", "pixel_size", type=click.FloatRange(0, min_open=True), default=None,
              help="Pixel size in um; overrides the file's metadata and the config default.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="TOML file overriding the default configuration.")
@click.option("--model", default=None, help="Model folder or checkpoint (default: shipped).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None,
              help="Where the segmenter runs (default from config: auto).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="What runs the network: auto (default from config: on the CPU OpenVINO, "
                   "else ONNX Runtime, where the model's checked model.onnx allows, else "
                   "torch), torch, onnx (ONNX Runtime) or openvino.")
@click.option("--int8/--no-int8", "int8", default=None,
              help="With OpenVINO, segment every frame with the model folder's checked int8 "
                   "network where it has one: faster, masks close to but not float32's "
                   "(default from config: no).")
@click.option("--self-adapt/--no-self-adapt", "self_adapt", default=None,
              help="Per video, fine-tune the segmenter on a made-up beat of the video's own "
                   "largest mask, then segment again where the adapted masks pass their "
                   "checks: ejection fractions much closer on microscopes the model was not "
                   "trained for, at about 8 s more per video on 2 cores; "
                   "--no-self-adapt for heart-rate screens (default from config: yes).")
@click.option("--batch-size", type=int, default=None, help="Frames per segmenter batch.")
@click.option("--save-masks", is_flag=True, help="Also write masks.tif per video.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Local worker processes (default: one per core, at most one per video; "
                   "1 = this process). Torch threads are split between them.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Send the videos to a running Dask scheduler (e.g. tcp://host:8786); the "
                   "output folder must be on a file system the workers share.")
@click.option("--force", is_flag=True,
              help="Analyse every video again (default: reuse complete results made with the "
                   "same inputs, configuration, model and version).")
@click.option("--group-by", "group_by", multiple=True,
              help="Metadata column(s) whose values make the rows of conditions.csv.")
@click.option("--no-plots", is_flag=True,
              help="No trace.png and montage.png per video (report.html is still written).")
@click.option("--overlay-video", is_flag=True,
              help="Also write overlay.avi per video: every frame with its mask outline.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--strict", is_flag=True,
              help="Exit with status 1 when any video failed (default: only when none was "
                   "analysed).")
@click.pass_context
def analyze(ctx, inputs, out_dir, manifest, masks, fps, pixel_size, config_path, model, device,
            runtime, int8, self_adapt, batch_size, save_masks, workers, scheduler, force, group_by,
            no_plots, overlay_video, no_progress, strict):
    """Measure heart rate, volumes, EF and FS beat by beat in each INPUT.

    INPUT is a video (AVI/MP4/MOV, multi-page TIFF/OME-TIFF), a folder of numbered frames,
    a folder to search for videos (screening-microscope frame folders are split per well),
    or a glob pattern. Re-running the same command resumes: finished videos are reused.

    Exit status: 0 when at least one video was analysed (with --strict: every video), 1
    otherwise or on an error before any video was read.
    """
    from ..batch import OutputError, run_batch
    from ..config import load_config, with_overrides
    from ..io.discover import VideoSource, discover_sources, source_names
    from ..io.manifest import ManifestError, read_manifest
    from ..options import BatchOptions, VideoOptions

    debug = ctx.obj.get("debug", False) if ctx.obj else False
    if not inputs and manifest is None:
        raise click.UsageError("give INPUT(s), --manifest FILE, or both")
    try:
        config = load_config(config_path)
        sources = discover_sources(list(inputs)) if inputs else []
        sources += read_manifest(manifest) if manifest is not None else []
    except (OSError, ValueError, ManifestError) as exc:
        raise click.ClickException(str(exc)) from None
    config = with_overrides(config, "segment", model=model, device=device, runtime=runtime,
                            int8=int8, self_adapt=self_adapt, batch_size=batch_size)
    if not sources:
        raise click.ClickException(f"no videos found in: {' '.join(inputs)}")
    if masks:
        if len(masks) != len(sources):
            raise click.ClickException(f"--masks given {len(masks)} time(s) for "
                                       f"{len(sources)} video(s); give one per video")
        sources = [VideoSource(s.path, s.screening, s.metadata, m.resolve())
                   for s, m in zip(sources, masks, strict=True)]
    if any(s.masks is None for s in sources):
        if config.segment.model is None:
            _require_default_model()
        else:
            _check_model(config.segment.model)
    try:
        video = VideoOptions(fps=fps, pixel_size_um=pixel_size, save_masks=save_masks,
                             plots=not no_plots, overlay_video=overlay_video)
        batch = BatchOptions(workers=workers, scheduler=scheduler, force=force,
                             group_by=tuple(group_by), show_progress=not no_progress,
                             debug=debug)
        summary = run_batch(sources, source_names(sources), out_dir, config, video, batch)
    except (OutputError, OSError, ValueError) as exc:  # OSError: e.g. no Dask scheduler there
        raise click.ClickException(str(exc)) from None
    click.echo(closing_line(summary, out_dir))
    n_failed = int((summary["status"] == "failed").sum())
    if n_failed == len(summary) or (strict and n_failed):
        ctx.exit(1)


def closing_line(summary, out_dir: Path, most: int = 10) -> str:
    """The run's last line: how many were analysed, reused, failed (named) and flagged."""
    from ..schema import REUSED, USABLE_STATUSES

    usable = summary["status"].isin(USABLE_STATUSES)
    n_reused = int(summary["status"].isin((REUSED, "skipped")).sum())
    failed = list(summary.loc[summary["status"] == "failed", "video"].astype(str))
    flagged = int((usable & (summary["qc_pass"].astype(str) == "False")).sum())
    reused = f" ({n_reused} reused from an earlier run)" if n_reused else ""
    line = (f"{int(usable.sum())}/{len(summary)} video(s) analysed{reused}, {len(failed)} "
            f"failed, {flagged} flagged by QC; summary in {out_dir / 'summary.csv'}")
    if failed:
        more = f" and {len(failed) - most} more" if len(failed) > most else ""
        line += f"\nfailed: {', '.join(failed[:most])}{more}"
    return line


def _check_model(model: str) -> None:
    """A one-line error, once and before any video is read, for a --model that is not one."""
    from pathlib import Path

    path = Path(model)
    if not path.exists():
        raise click.ClickException(f"{path}: --model not found (a model folder or checkpoint)")
    try:
        from ..model.checkpoint import load_checkpoint
    except ImportError:  # no torch: the segmenter says so when it is made
        return
    try:
        load_checkpoint(path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _require_default_model() -> None:
    """A one-line error, before any video is read, when no default model is installed."""
    import importlib

    segment = importlib.import_module("medaka_heart.segment")  # as sys.modules has it
    where = getattr(segment, "default_model_path", None)  # absent in a stand-in segmenter
    if where is not None and not (where() / "model.pt").is_file():
        raise click.ClickException(
            "no default segmentation model is installed with this version of medaka_heart: "
            "pass --model (a model folder from `medaka-heart train`) or --masks / a manifest "
            "'masks' column")
