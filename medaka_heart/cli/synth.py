"""`medaka-heart synth`: seeded phantom videos with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder: <name>.avi and <name>.truth/ per video.")
@click.option("--n", "n", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of videos.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Master seed; video i uses a seed derived from it.")
@click.option("--preset", default="typical", show_default=True,
              help="Preset name (clean, typical, hard, hts) or a preset TOML file.")
@click.option("--tiff", is_flag=True, help="Also write each video as a multi-page TIFF.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def synth(out_dir, n, seed, preset, tiff, no_progress):
    """Write N synthetic beating-heart videos with their truth (masks, frames, beats, meta)."""
    from ..phantom import write_synth_set
    from ..phantom.presets import preset_names

    if preset not in preset_names() and not Path(preset).is_file():
        raise click.BadParameter(
            f"'{preset}' is neither a preset ({', '.join(preset_names())}) nor a TOML file",
            param_hint="--preset")
    try:
        videos = write_synth_set(out_dir, n, seed, preset, tiff=tiff, progress=not no_progress)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(videos)} video(s) with truth to {out_dir}")
