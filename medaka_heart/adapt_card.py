"""The model card of an adapted model folder: MODEL_CARD.md (for people), adapt.json (for tools)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .io.atomic import write_text_atomic

if TYPE_CHECKING:
    from .adapt import AdaptResult

CARD_FILE = "MODEL_CARD.md"
ADAPT_FILE = "adapt.json"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def card_text(result: AdaptResult, provenance: dict[str, Any]) -> str:
    """MODEL_CARD.md: what the model was adapted from and on, its scores and the command."""
    from .adapt import format_scores

    source = provenance["adapted_from"]
    train = provenance["annotations"]["recordings"]
    held = provenance["held_out"]["recordings"]
    lines = [
        "# Adapted ventricle segmenter", "",
        f"Adapted from `{source['path']}` (sha256 {source['sha256'][:16]}...) by medaka-heart "
        f"{provenance['package_version']}, {result.steps} training steps, "
        f"{result.seconds:.0f} s in all.", "",
        f"Trained on {result.train_frames} annotated frame(s) of {len(train)} recording(s) "
        f"under `{provenance['annotations']['path']}`:", "",
        *[f"- {r['name']} ({r['layout']}): {len(r['frames'])} frame(s)" for r in train], "",
        "## Held-out scores", "",
        "Frames never trained on, segmented as a clip per recording (no beat), by the initial "
        "model "
        "(before) and this one (after). ED-like / ES-like: the fifth of the held-out frames "
        "with the largest / smallest true area; area error + = masks too large.", "",
        *[f"- held out: {r['name']}: {len(r['frames'])} frame(s)" for r in held], "",
        "```", format_scores(result), "```", "",
        "## Command", "", "```", provenance.get("command") or "(called from Python)", "```", "",
        "Use it: `medaka-heart analyze VIDEO -o OUT --model THIS_FOLDER`.", "",
    ]
    return "\n".join(lines)


def write_card(folder: str | Path, result: AdaptResult, provenance: dict[str, Any]) -> None:
    """Write MODEL_CARD.md and adapt.json into the model folder `folder`."""
    folder = Path(folder)
    write_text_atomic(folder / CARD_FILE, card_text(result, provenance))
    record = {**provenance, "steps": result.steps, "seconds": result.seconds,
              "train_frames": result.train_frames, "held_out_frames": result.held_out_frames,
              "scores": {"before": None if result.before is None else result.before.to_dict(),
                         "after": None if result.after is None else result.after.to_dict()}}
    write_text_atomic(folder / ADAPT_FILE, json.dumps(_clean(record), indent=2) + "\n")
