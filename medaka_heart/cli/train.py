"""`medaka-heart train`: train a U-Net ventricle segmenter from a training config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("config_path", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Run folder: last.pt, model/ (best), metrics.jsonl.")
@click.option("--data", "data_path",
              type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Train on this folder instead of the config's sources: a HeartSeg tree "
                   "(train_images/, test_images/), a folder of phantom videos (<name>.avi + "
                   "<name>.truth/), or image/mask pairs.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override [optim] epochs.")
@click.option("--seed", type=int, default=None, help="Override [optim] seed.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch CPU threads (default from config).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto",
              show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
@click.option("--init", "init", type=click.Path(exists=True, path_type=Path), default=None,
              help="Start from these weights (a model folder or checkpoint of the same "
                   "architecture, e.g. medaka_heart/weights to fine-tune the default model on "
                   "your own annotations). Overrides [optim] init.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep generated phantom pairs here and reuse them in later runs.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def train(config_path, out_dir, data_path, epochs, seed, threads, device, resume, init,
          cache_dir, no_progress):
    """Train the segmenter as CONFIG_PATH (a configs/train/*.toml file) says.

    Without CONFIG_PATH the built-in defaults are used. The best model folder (by validation
    Dice) is OUT/model; pass it to `medaka-heart analyze --model`.
    """
    from ..model.train import train as run_training
    from ..model.train_config import SourceConfig, load_train_config, replace_in

    try:
        config = load_train_config(config_path)
        config = replace_in(config, "optim", epochs=epochs, seed=seed, threads=threads,
                            init=None if init is None else str(init))
        if data_path is not None:
            config = replace_in(config, "data", sources=(_source_for(data_path, SourceConfig),))
        result = run_training(config, out_dir, resume=resume, device=device,
                              progress=not no_progress, cache_dir=cache_dir)
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"best validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}; "
               f"model folder {result.model_dir}")


def _source_for(path: Path, source_cls):
    if (path / "train_images").is_dir() or (path / "test_images").is_dir():
        return source_cls("heartseg", path=str(path))
    if any(path.glob("*.truth")):
        return source_cls("synth", path=str(path))
    return source_cls("pairs", path=str(path))
