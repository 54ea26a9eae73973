"""`medaka-heart analyze`: videos in, per-video tables and a run summary out."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (one subfolder per video, summary.csv).")
@click.option("--masks", "masks", multiple=True, type=click.Path(path_type=Path),
              help="Ventricle masks to measure instead of segmenting (stack or folder; any "
                   "nonzero pixel is ventricle). Give once per input, in the same order.")
@click.option("--fps", type=float, default=None, help="Frame rate; overrides the file's.")
@click.option("--pixel-size", "pixel_size", type=float, default=None,
              help="Pixel size in um; overrides the file's metadata and the config default.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="TOML file overriding the default configuration.")
@click.option("--model", default=None, help="Model folder or checkpoint (default: shipped).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default=None,
              help="Where the segmenter runs (default from config: auto).")
@click.option("--batch-size", type=int, default=None, help="Frames per segmenter batch.")
@click.option("--save-masks", is_flag=True, help="Also write masks.tif per video.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_context
def analyze(ctx, inputs, out_dir, masks, fps, pixel_size, config_path, model, device, batch_size,
            save_masks, no_progress):
    """Measure heart rate, volumes, EF and FS beat by beat in each INPUT.

    INPUT is a video (AVI/MP4/MOV, multi-page TIFF/OME-TIFF), a folder of numbered frames,
    a folder to search for videos, or a glob pattern.
    """
    from ..batch import run_batch
    from ..config import load_config, with_overrides
    from ..io.discover import expand_inputs, output_names

    debug = ctx.obj.get("debug", False) if ctx.obj else False
    try:
        config = load_config(config_path)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    config = with_overrides(config, "segment", model=model, device=device, batch_size=batch_size)
    videos = expand_inputs(list(inputs))
    if not videos:
        raise click.ClickException(f"no videos found in: {' '.join(inputs)}")
    if masks and len(masks) != len(videos):
        raise click.ClickException(
            f"--masks given {len(masks)} time(s) for {len(videos)} video(s); give one per video")

    def segmenter_factory():
        from ..segment import load_segmenter

        return load_segmenter(config.segment, config.preprocess)

    summary = run_batch(
        videos, output_names(videos), out_dir, config,
        masks=list(masks) if masks else None, segmenter_factory=segmenter_factory,
        fps=fps, pixel_size_um=pixel_size, save_masks=save_masks,
        show_progress=not no_progress, debug=debug,
    )
    n_ok = int((summary["status"] == "ok").sum())
    click.echo(f"{n_ok}/{len(summary)} video(s) analysed; summary in {out_dir / 'summary.csv'}")
    if n_ok == 0:
        ctx.exit(1)
