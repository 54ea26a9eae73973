"""Export a model folder's networks to ONNX beside their weights (model.onnx), checked against
torch and stamped (model.check.json), so that `analyze` runs them with ONNX Runtime on the CPU
without importing torch (`[segment] runtime = "auto"`, the default).

    python scripts/export_onnx.py medaka_heart/weights          # the shipped model
    python scripts/export_onnx.py runs/mine/model                # a model from `train`

`medaka-heart adapt` exports its model folders itself. A model folder without model.onnx runs
on torch unless `runtime = "onnx"` is asked for (then the export is made once per machine into
the cache folder). Re-run after changing model.pt: a model.onnx whose stamp names other weights
is checked against torch again at start-up, and not used if it fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medaka_heart.runtime_onnx import export_model_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder (model.pt, config.json)")
    args = parser.parse_args(argv)
    if not (args.model / "model.pt").is_file():
        print(f"{args.model}: not a model folder (no model.pt)", file=sys.stderr)
        return 1
    for path, difference in export_model_folder(args.model):
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, largest probability difference "
              f"from torch {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
