"""Command-line interface: `medaka-heart COMMAND ...` (one module per command).

Only this package knows about click; heavy imports (torch, OpenCV) happen inside the
commands so that `--help` is instant.
"""

from __future__ import annotations

import logging

import click

from .. import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medaka-heart")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logging.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Cardiac phenotypes from microscope videos of medaka and zebrafish embryo hearts."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from .adapt import adapt
    from .analyze import analyze
    from .evaluate import evaluate
    from .synth import synth
    from .train import train

    main.add_command(analyze)
    main.add_command(synth)
    main.add_command(evaluate)
    main.add_command(train)
    main.add_command(adapt)


_register()
