"""runtime_int8: a model folder's checked int8 network runs the fine pass over every frame,
and only there; an unchecked or changed one is never used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medaka_heart import segment
from medaka_heart.model.checkpoint import ModelInfo, save_model_folder
from medaka_heart.model.data import toy_pair
from medaka_heart.model.inputs import COARSE, FINE
from medaka_heart.model.unet import UNet, UNetConfig
from medaka_heart.runtime_int8 import INT8_STAMP, int8_check, int8_files, write_int8_stamp
from medaka_heart.runtime_onnx import ONNX_FILE, check_engines, export_onnx


class Segmenter(segment.Segmenter):
    """The segmenter without per-video self-adaptation, unless asked for: these tests are
    about the network's passes (self-adaptation has its own, test_self_adapt.py)."""

    def __init__(self, model=None, **settings):
        super().__init__(model, **{"self_adapt": False, **settings})

ov = pytest.importorskip("openvino")
torch.set_num_threads(1)
ARCH = UNetConfig(depth=2, base_filters=4, dropout=0.2, in_channels=2)
REPO = Path(__file__).resolve().parents[1]


def _net(seed: int) -> UNet:
    torch.manual_seed(seed)
    net = UNet(ARCH)
    net.train()
    net(torch.rand(4, 2, 32, 32))  # batch norm has seen a batch
    return net.eval()


@pytest.fixture
def folder(tmp_path):
    """A two-pass model folder with its checked model.onnx, and as its "int8" network an IR
    of *other* weights (so that which network ran shows in the output), stamped."""
    where = save_model_folder(tmp_path / "model", _net(0),
                              ModelInfo(ARCH, input_size=32, coarse_size=64, threshold=0.5))
    reference = Segmenter(where, threads=1, runtime="torch").runtime.net
    export_onnx(reference, 2, 32, where / ONNX_FILE)
    check_engines(reference, 2, 32, where / ONNX_FILE, where / "model.pt")
    other = tmp_path / "other.onnx"
    export_onnx(_net(1), 2, 32, other)
    ov.save_model(ov.convert_model(str(other)), str(int8_files(where)[0]))
    write_int8_stamp(where, where / "model.pt", 0.995, "a test")
    return where


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return np.stack([toy_pair(rng, 60, 80)[0] for _ in range(9)])


def test_the_int8_network_runs_fine_passes_asked_for_and_nothing_else(folder, tmp_path):
    seg = Segmenter(folder, threads=1, runtime="openvino", int8=True)
    plain = Segmenter(folder, threads=1, runtime="openvino")  # float32 by default
    assert seg.provenance()["int8"] is True
    assert plain.provenance()["int8"] is False
    other = Segmenter(save_model_folder(tmp_path / "other", _net(1), ModelInfo(
        ARCH, input_size=32, coarse_size=64, threshold=0.5)), threads=1, runtime="torch")
    images = np.random.default_rng(1).random((3, 32, 32), dtype=np.float32)
    own = plain.runtime.predict(images, FINE)
    theirs = other.runtime.predict(images, FINE)
    assert np.abs(own - theirs).max() > 0.01  # the two networks tell apart
    np.testing.assert_allclose(seg.runtime.predict(images, FINE, int8=True), theirs, atol=1e-4)
    np.testing.assert_allclose(seg.runtime.predict(images, FINE), own, atol=1e-6)
    np.testing.assert_allclose(seg.runtime.predict(images, COARSE, int8=True),
                               plain.runtime.predict(images, COARSE), atol=1e-6)


def test_a_video_is_located_in_float_and_segmented_in_int8(folder, frames):
    int8 = [f for _, f in Segmenter(folder, threads=1, int8=True).segment_video([frames],
                                                                                 10.0)]
    plain = [f for _, f in Segmenter(folder, threads=1).segment_video([frames], 10.0)]
    assert [f.box for f in int8] == [f.box for f in plain]  # the same crops
    assert not np.allclose(int8[0].prob, plain[0].prob, atol=1e-3)  # other masks in them


def test_an_int8_network_is_used_only_as_checked(folder):
    assert int8_check(folder, folder / "model.pt") is None
    stamp = json.loads((folder / INT8_STAMP).read_text())
    (folder / INT8_STAMP).write_text(json.dumps({**stamp, "dice": 0.98}))
    assert "0.9800 (< 0.99)" in int8_check(folder, folder / "model.pt")
    assert Segmenter(folder, threads=1, runtime="openvino",
                     int8=True).provenance()["int8"] is False
    write_int8_stamp(folder, folder / "model.pt", 0.995, "a test")
    with int8_files(folder)[1].open("ab") as fh:  # the weights file changed since its check
        fh.write(b"\0")
    assert int8_check(folder, folder / "model.pt") == "its check was made on other files"
    write_int8_stamp(folder, folder / "model.pt", 0.995, "a test")
    assert int8_check(folder, folder / "model.onnx") == "its check was made on other files"
    (folder / INT8_STAMP).unlink()
    assert int8_check(folder, folder / "model.pt").startswith("no readable check")
    int8_files(folder)[0].unlink()
    assert int8_check(folder, folder / "model.pt") == "no model.int8.xml"


def test_torch_never_runs_the_int8_network(folder):
    assert Segmenter(folder, threads=1, runtime="torch", int8=True).provenance()["int8"] is False


def test_quantize_script_writes_a_checked_network_or_nothing(tmp_path):
    pytest.importorskip("nncf")
    where = save_model_folder(tmp_path / "model", _net(0),
                              ModelInfo(ARCH, input_size=32, coarse_size=64, threshold=0.5))
    reference = Segmenter(where, threads=1, runtime="torch").runtime.net
    export_onnx(reference, 2, 32, where / ONNX_FILE)
    check_engines(reference, 2, 32, where / ONNX_FILE, where / "model.pt")
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "quantize_int8.py"),
                          str(where), "--videos", "1", "--work", str(tmp_path / "work")],
                         capture_output=True, text=True, check=False)
    assert run.returncode in (0, 1), run.stderr
    leftovers = [p.name for p in where.iterdir() if p.name.startswith(".int8-")]
    assert leftovers == []  # nothing half-written
    if run.returncode == 0:
        assert int8_check(where, where / "model.pt") is None
        assert "written and stamped" in run.stdout
    else:  # its masks did not agree with torch's: no file
        assert not int8_files(where)[0].exists()
        assert "not written" in run.stderr
