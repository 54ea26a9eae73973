"""`medaka-heart adapt`: fine-tune the segmenter on a lab's own annotated frames."""

from __future__ import annotations

import shlex
from pathlib import Path

import click


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model folder to write (take it with `analyze --model OUT`).")
@click.option("--init", type=click.Path(exists=True, path_type=Path), default=None,
              help="Model folder or checkpoint to start from (default: the shipped model).")
@click.option("--minutes", type=click.FloatRange(min=0.1), default=None,
              help="Wall-time budget of the whole command, minutes (default 4.5).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train exactly this many steps instead of filling the time budget "
                   "(reproducible on any machine).")
@click.option("--holdout", type=click.FloatRange(0.0, 0.9), default=None,
              help="Share of recordings (or, with one recording, of its frames) held out for "
                   "the before/after scores (default 0.25; 0 = none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
              show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def adapt(data, out, init, minutes, steps, holdout, seed, device, no_progress):
    """Adapt the segmenter to your microscope from annotated frames under DATA.

    DATA holds image/mask pairs (X.png + X_mask.png, or images/ + masks/; a subfolder is a
    recording), a HeartSeg tree, napari Labels TIFFs (NAME_labels.tif beside NAME's video),
    Fiji/ImageJ ROI sets (NAME.zip / NAME.roi beside NAME's video) or `analyze --save-masks`
    result folders with corrected masks (corrected/ or corrected_frames.txt). Any nonzero
    mask value is ventricle. Prints held-out Dice and area errors before and after.
    """
    from ..adapt import DEFAULT_MINUTES, HOLDOUT_FRACTION, format_scores
    from ..adapt import adapt as run_adapt

    given = {"--init": init, "--minutes": minutes, "--steps": steps, "--holdout": holdout}
    command = shlex.join(["medaka-heart", "adapt", str(data), "-o", str(out),
                          *(part for flag, value in given.items() if value is not None
                            for part in (flag, str(value))),
                          "--seed", str(seed)])
    try:
        result = run_adapt(data, out, init=init,
                           minutes=DEFAULT_MINUTES if minutes is None else minutes,
                           steps=steps, holdout=HOLDOUT_FRACTION if holdout is None else holdout,
                           seed=seed, device=device, progress=not no_progress, command=command)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_scores(result))
    click.echo(f"{result.train_frames} training frames, {result.steps} steps, "
               f"{result.seconds:.0f} s; model folder {result.model_dir} "
               f"(use: medaka-heart analyze VIDEO -o OUT --model {result.model_dir})")
