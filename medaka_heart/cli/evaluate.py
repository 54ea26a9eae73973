"""`medaka-heart evaluate PRED TRUTH -o REPORT`: compare an analysis with the truth."""

from __future__ import annotations

import math
from pathlib import Path

import click


def _thresholds(spec: str | None, option: str) -> dict[str, float]:
    """`parse_thresholds` of an option's value; a bad one is a usage error naming the option."""
    try:
        return parse_thresholds(spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def parse_thresholds(spec: str | None) -> dict[str, float]:
    """Parse 'metric=value,metric=value' into a dict; unknown metric names raise ValueError."""
    from ..evaluate import METRIC_NAMES

    out: dict[str, float] = {}
    if not spec:
        return out
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"threshold {item!r} is not of the form metric=value")
        if name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"threshold {item!r}: {value!r} is not a number") from None
    return out


@click.command()
@click.argument("pred", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("truth", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "report_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Report folder: evaluation.csv, beats_vs_truth.csv, dice.csv, metrics.json.")
@click.option("--fail-under", metavar="METRIC=VALUE,...",
              help="Exit with status 1 if a metric is below its value, "
                   "e.g. dice_mean=0.9,edes_detection_rate=0.99.")
@click.option("--fail-over", metavar="METRIC=VALUE,...",
              help="Exit with status 1 if a metric is above its value, "
                   "e.g. ed_frame_error_mean=0.5,ef_abs_err_median=5.")
@click.option("--chunk-frames", type=click.IntRange(min=1), default=None,
              help="Mask frames read at once (default: from the config).")
@click.option("-q", "--quiet", is_flag=True, help="Do not print the pred (truth) beat table.")
def evaluate(pred: Path, truth: Path, report_dir: Path, fail_under: str | None,
             fail_over: str | None, chunk_frames: int | None, quiet: bool) -> None:
    """Compare the analysis in PRED with the truth in TRUTH (phantom output or own annotations).

    Videos are matched by name. Metrics: per-frame Dice of the masks, ED/ES detection
    rate (events within half a beat), frame errors of ED/ES, and errors of HR, EF, FS
    and volumes per beat. Metric names for the thresholds are the keys of metrics.json.
    When PRED/summary.csv has QC results, the same metrics over the videos that passed QC
    are printed too and kept under "qc_passed" in metrics.json.
    """
    from ..config import IOConfig
    from ..evaluate_folders import evaluate_folders, write_evaluation
    from ..evaluate_report import failed_thresholds, paper_table

    under = _thresholds(fail_under, "--fail-under")
    over = _thresholds(fail_over, "--fail-over")
    chunk = chunk_frames if chunk_frames is not None else IOConfig().chunk_frames
    try:
        result = evaluate_folders(pred, truth, chunk_frames=chunk)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    paths = write_evaluation(result, report_dir)

    if not quiet and len(result.beats):
        click.echo(paper_table(result.beats).to_string(index=False))
        click.echo("")
    if result.only_pred:
        click.echo(f"only in PRED (not evaluated): {', '.join(result.only_pred)}", err=True)
    if result.only_truth:
        click.echo(f"only in TRUTH (not evaluated): {', '.join(result.only_truth)}", err=True)
    errors = result.per_video[result.per_video["status"] == "error"]
    for _, row in errors.iterrows():
        click.echo(f"{row['video']}: not evaluated: {row['error']}", err=True)
    s = result.summary
    click.echo(
        f"{s.n_videos} videos, {s.n_beats_true} true beats, {s.n_beats_pred} predicted; "
        f"Dice mean {_num(s.dice_mean)} (p05 {_num(s.dice_p05)}); "
        f"ED/ES detection {_num(s.edes_detection_rate)}, {s.n_false_events} false events; "
        f"frame error ED {_num(s.ed_frame_error_mean)} ES {_num(s.es_frame_error_mean)} "
        f"max {_num(s.edes_frame_error_max)}; EF error median {_num(s.ef_abs_err_median)} "
        f"points"
    )
    if math.isfinite(s.dice_es):
        click.echo(
            f"masks at ED-like / ES-like frames: Dice {_num(s.dice_ed)} / {_num(s.dice_es)}, "
            f"area error {_signed(s.area_error_ed_pct)} / {_signed(s.area_error_es_pct)} % "
            f"of the true area"
        )
    q = result.qc_passed
    if q is not None:
        click.echo(
            f"passed QC: {q.n_videos} of {s.n_videos} videos, {q.n_beats_true} true beats; "
            f"Dice mean {_num(q.dice_mean)}; ED/ES detection {_num(q.edes_detection_rate)}; "
            f"HR error median {_num(q.hr_rel_err_pct_median)} %; "
            f"EF error median {_num(q.ef_abs_err_median)} points"
        )
    click.echo(f"report: {paths['metrics'].parent}")

    failed = failed_thresholds(s, under, over)
    if failed:
        raise click.ClickException(f"evaluation failed: {'; '.join(failed)}")


def _num(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3g}"


def _signed(value: float) -> str:
    """A signed percentage to one decimal, or n/a."""
    return f"{value:+.1f}" if math.isfinite(value) else "n/a"
