"""Export a model folder's networks to ONNX beside their weights (model.onnx), checked against
torch, so that `analyze` runs them with ONNX Runtime on the CPU (`[segment] runtime = "auto"`).

    python scripts/export_onnx.py medaka_heart/weights          # the shipped model
    python scripts/export_onnx.py runs/mine/model                # a model from `train`

A model folder without model.onnx runs on torch unless `runtime = "onnx"` is asked for (then the
export is made once per machine into the cache folder). Re-run after changing model.pt: a
model.onnx that no longer matches the weights is not used (it fails the check against torch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medaka_heart.config import SegmentConfig
from medaka_heart.model.folder import LOCALISER_DIR
from medaka_heart.runtime import ModelRuntime
from medaka_heart.runtime_onnx import ONNX_FILE, OnnxNetwork, check_against_torch, export_onnx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder (model.pt, config.json)")
    args = parser.parse_args(argv)
    if not (args.model / "model.pt").is_file():
        print(f"{args.model}: not a model folder (no model.pt)", file=sys.stderr)
        return 1
    runtime = ModelRuntime(SegmentConfig(model=str(args.model), device="cpu", runtime="torch"))
    nets = [(runtime.net, runtime.info, args.model, runtime.size)]
    if (args.model / LOCALISER_DIR).is_dir():
        nets.append((runtime.coarse_net, runtime.coarse_info, args.model / LOCALISER_DIR,
                     runtime.coarse_size))
    for net, info, folder, side in nets:
        channels = info.architecture.in_channels
        path = export_onnx(net, channels, side, folder / ONNX_FILE)
        difference = check_against_torch(OnnxNetwork(path, None), net, channels, side)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, largest probability difference "
              f"from torch {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
