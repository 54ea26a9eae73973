"""Export a model folder's networks to ONNX beside their weights (model.onnx), checked against
torch and stamped (model.check.json), so that `analyze` runs them with OpenVINO or ONNX Runtime
on the CPU without importing torch (`[segment] runtime = "auto"`, the default).

    python scripts/export_onnx.py medaka_heart/weights          # the shipped model
    python scripts/export_onnx.py runs/mine/model                # a model from `train`
    python scripts/export_onnx.py --check-only medaka_heart/weights  # stamp each engine

Every installed engine (OpenVINO, ONNX Runtime) is checked on the file and stamped where it
passes; `--check-only` checks the model.onnx already there, without exporting it again.

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
    parser.add_argument("--check-only", action="store_true",
                        help="check and stamp the model.onnx there, without exporting it")
    args = parser.parse_args(argv)
    if not (args.model / "model.pt").is_file():
        print(f"{args.model}: not a model folder (no model.pt)", file=sys.stderr)
        return 1
    for path, passed in export_model_folder(args.model, export=not args.check_only):
        checks = ", ".join(f"{engine} {difference:.1e}" for engine, difference in passed.items())
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, largest probability difference "
              f"from torch: {checks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
