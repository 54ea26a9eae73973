"""runtime: OpenVINO and ONNX Runtime give the masks torch gives, and are chosen only where
they check out."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from medaka_heart.model.checkpoint import ModelInfo, save_model_folder
from medaka_heart.model.data import toy_pair
from medaka_heart.model.device import device_type
from medaka_heart.model.unet import UNet, UNetConfig
from medaka_heart.runtime_onnx import (
    ONNX_FILE,
    OnnxNetwork,
    OnnxUnavailable,
    check_against_torch,
    check_engines,
    export_onnx,
    installed_engines,
    is_stamped,
    stamp_path,
)
from medaka_heart.segment import Segmenter

pytest.importorskip("onnxruntime")
torch.set_num_threads(1)
AUTO = installed_engines()[0]  # what runtime "auto" picks on the CPU: OpenVINO where installed


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A two-pass model folder of a random U-Net whose batch norm has seen a batch."""
    torch.manual_seed(0)
    arch = UNetConfig(depth=2, base_filters=4, dropout=0.2, in_channels=2)
    net = UNet(arch)
    net.train()
    net(torch.rand(4, 2, 32, 32))
    return save_model_folder(tmp_path_factory.mktemp("model"), net.eval(),
                             ModelInfo(arch, input_size=32, coarse_size=64, threshold=0.5))


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return np.stack([toy_pair(rng, 60, 80)[0] for _ in range(9)])


def _copy(model_dir, folder):
    """A new model folder at `folder` with `model_dir`'s weights and config (no ONNX file)."""
    folder.mkdir()
    for name in ("model.pt", "config.json"):
        (folder / name).write_bytes((model_dir / name).read_bytes())
    return folder


def _video(seg, frames):
    return [found for _, found in seg.segment_video([frames[:5], frames[5:]], 10.0)]


@pytest.mark.parametrize("engine", installed_engines())
def test_onnx_gives_the_masks_torch_gives(engine, model_dir, frames, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    reference = Segmenter(model_dir, threads=1, runtime="torch")
    fast = Segmenter(model_dir, threads=1, runtime=engine)  # exported into the cache
    assert reference.provenance()["runtime"] == "torch"
    assert fast.provenance()["runtime"] == engine
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    for a, b in zip(_video(reference, frames), _video(fast, frames), strict=True):
        assert a.box == pytest.approx(b.box)
        np.testing.assert_allclose(b.prob, a.prob, atol=1e-4)
        overlap = (a.masks & b.masks).sum()
        assert 2 * overlap / (a.masks.sum() + b.masks.sum()) >= 0.99
    # the export is made once: a second runtime takes the cached file
    monkeypatch.setattr("medaka_heart.runtime_onnx.export_onnx",
                        lambda *a, **k: pytest.fail("exported again"))
    again = Segmenter(model_dir, threads=1, runtime=engine)
    np.testing.assert_allclose(_video(again, frames)[0].prob, _video(fast, frames)[0].prob)


def test_auto_takes_onnx_only_where_the_model_folder_ships_it(model_dir, frames, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    assert Segmenter(model_dir, threads=1, runtime="auto").provenance()["runtime"] == "torch"
    shipped = _copy(model_dir, tmp_path / "shipped")
    plain = Segmenter(shipped, threads=1, runtime="torch")
    export_onnx(plain.runtime.net, 2, 32, shipped / ONNX_FILE)
    auto = Segmenter(shipped, threads=1, runtime="auto")
    assert auto.provenance()["runtime"] == AUTO
    assert not (tmp_path / "cache").exists()  # the folder's own file, nothing cached
    np.testing.assert_allclose(_video(auto, frames)[1].prob, _video(plain, frames)[1].prob,
                               atol=1e-4)


def test_an_onnx_file_that_disagrees_with_torch_is_not_used(model_dir, tmp_path, monkeypatch,
                                                           caplog):
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    stale = _copy(model_dir, tmp_path / "stale")
    torch.manual_seed(1)
    other = UNet(UNetConfig(depth=2, base_filters=4, in_channels=2)).eval()
    export_onnx(other, 2, 32, stale / ONNX_FILE)  # another network's weights
    with caplog.at_level("WARNING"):
        seg = Segmenter(stale, threads=1, runtime="auto")
    assert seg.provenance()["runtime"] == "torch"
    assert "differs from torch" in caplog.text


def test_onnx_asked_for_and_impossible_is_one_clear_error(model_dir, monkeypatch):
    import medaka_heart.runtime_onnx as runtime_onnx

    def missing(*args, **kwargs):
        raise OnnxUnavailable("onnxruntime is not installed")

    monkeypatch.setattr(runtime_onnx, "OnnxNetwork", missing)
    monkeypatch.setattr(runtime_onnx, "export_onnx", lambda *a, **k: None)
    with pytest.raises(ValueError, match="runtime 'onnx' not possible"):
        Segmenter(model_dir, threads=1, runtime="onnx")
    with pytest.raises(ValueError, match="unknown runtime"):
        Segmenter(model_dir, threads=1, runtime="tensorrt")


def test_the_shipped_model_runs_on_its_checked_onnx_file():
    from medaka_heart.runtime import default_model_path

    shipped = default_model_path()
    seg = Segmenter(threads=1)  # the default runtime: the shipped, stamped model.onnx
    assert seg.provenance()["runtime"] == AUTO
    assert seg.provenance()["model_sha256"].startswith("737ecaec")  # the 0.8.0 weights
    reference = Segmenter(threads=1, runtime="torch").runtime
    for engine in ("openvino", "onnx"):  # stamped for both engines
        assert is_stamped(shipped / ONNX_FILE, shipped / "model.pt", engine)
        if engine not in installed_engines():
            continue
        # the stamp is honest: the file gives torch's probabilities
        network = OnnxNetwork(shipped / ONNX_FILE, 1, engine)
        difference = check_against_torch(network, reference.net,
                                         reference.info.architecture.in_channels,
                                         reference.size)
        assert difference <= 1e-4


def test_a_cpu_run_on_the_shipped_model_never_imports_torch(tmp_path):
    frames = np.stack([toy_pair(np.random.default_rng(i), 96, 128)[0] for i in range(12)])
    np.save(tmp_path / "frames.npy", frames)
    code = (
        "import sys, numpy as np\n"
        "from medaka_heart.segment import Segmenter\n"
        f"frames = np.load({str(tmp_path / 'frames.npy')!r})\n"
        "seg = Segmenter(threads=1, device='auto', self_adapt=False)\n"  # adapting trains in torch
        "found = [f for _, f in seg.segment_video([frames], 10.0)]\n"
        "assert found[0].prob.shape == frames.shape[:3], found[0].prob.shape\n"
        "print(seg.provenance()['runtime'], 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=False)
    assert run.returncode == 0, run.stderr
    if device_type("auto") == "cpu":
        assert run.stdout.split() == [AUTO, "False"]


def test_a_checked_file_is_stamped_and_then_used_without_torch(model_dir, tmp_path,
                                                               monkeypatch):
    import medaka_heart.runtime_onnx as runtime_onnx

    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    folder = _copy(model_dir, tmp_path / "folder")
    export_onnx(Segmenter(folder, threads=1, runtime="torch").runtime.net, 2, 32,
                folder / ONNX_FILE)
    assert not is_stamped(folder / ONNX_FILE, folder / "model.pt")
    first = Segmenter(folder, threads=1, runtime="auto")  # checked against torch, stamped
    assert first.provenance()["runtime"] == AUTO
    assert is_stamped(folder / ONNX_FILE, folder / "model.pt", AUTO)

    def no_check(*args, **kwargs):
        raise AssertionError("checked again")

    monkeypatch.setattr(runtime_onnx, "check_against_torch", no_check)
    again = Segmenter(folder, threads=1, runtime="auto")
    assert again.provenance()["runtime"] == AUTO
    assert not again.runtime._torch_nets  # no torch network was made
    # new weights: the stamp no longer matches, so the file is checked (and fails)
    monkeypatch.undo()
    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(3)
    other = UNet(UNetConfig(depth=2, base_filters=4, dropout=0.2, in_channels=2)).eval()
    save_model_folder(folder, other, ModelInfo(other.config, input_size=32, coarse_size=64))
    assert not is_stamped(folder / ONNX_FILE, folder / "model.pt", AUTO)
    assert Segmenter(folder, threads=1, runtime="auto").provenance()["runtime"] == "torch"


def test_each_engine_is_stamped_beside_the_others_and_old_stamps_name_onnx_runtime(
        model_dir, tmp_path):
    import json

    folder = _copy(model_dir, tmp_path / "folder")
    net = Segmenter(folder, threads=1, runtime="torch").runtime.net
    export_onnx(net, 2, 32, folder / ONNX_FILE)
    passed = check_engines(net, 2, 32, folder / ONNX_FILE, folder / "model.pt")
    assert set(passed) == set(installed_engines())
    assert all(is_stamped(folder / ONNX_FILE, folder / "model.pt", e) for e in passed)
    assert not is_stamped(folder / ONNX_FILE, folder / "model.pt", "tensorrt")
    # a stamp written before engines were named holds ONNX Runtime's check only
    stamp = json.loads(stamp_path(folder / ONNX_FILE).read_text())
    stamp_path(folder / ONNX_FILE).write_text(json.dumps(
        {"onnx_sha256": stamp["onnx_sha256"], "weights_sha256": stamp["weights_sha256"],
         "largest_probability_difference": 3e-6, "tolerance": 1e-4}))
    assert is_stamped(folder / ONNX_FILE, folder / "model.pt", "onnx")
    assert not is_stamped(folder / ONNX_FILE, folder / "model.pt", "openvino")


def test_larger_images_go_through_in_smaller_batches(monkeypatch):
    import medaka_heart.runtime_onnx as runtime_onnx
    from medaka_heart.model.inputs import COARSE, network_input

    seg = Segmenter(threads=1, batch_size=16)  # the shipped model: fine input 128 px
    runtime = seg.runtime
    sizes = []
    call = runtime_onnx.OnnxNetwork.__call__

    def recording(self, x):
        sizes.append(len(x))
        return call(self, x)

    monkeypatch.setattr(runtime_onnx.OnnxNetwork, "__call__", recording)
    rng = np.random.default_rng(0)
    fine = runtime.predict(rng.random((20, 128, 128), dtype=np.float32))
    assert sizes == [16, 4]
    sizes.clear()
    closer = rng.random((5, 512, 512), dtype=np.float32)
    prob = runtime.predict(closer, COARSE)
    assert sizes == [1] * 5  # 16 x 128^2 pixels per pass
    assert fine.shape == (20, 128, 128)
    channels = runtime.coarse_info.architecture.in_channels
    together = call(runtime._onnx[COARSE], network_input(closer, channels, COARSE))
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-together[:, 0])), atol=1e-5)


@pytest.mark.parametrize("failure", [ImportError, RuntimeError])  # not installed; no compile
def test_auto_falls_back_to_onnx_runtime_where_openvino_cannot_run(failure, monkeypatch,
                                                                   caplog, tmp_path):
    import medaka_heart.runtime_onnx as runtime_onnx

    monkeypatch.setenv("MEDAKA_HEART_CACHE", str(tmp_path / "cache"))

    def broken(path, threads, *, weights=None):
        raise failure("no openvino here")

    monkeypatch.setattr(runtime_onnx, "openvino_runner", broken)
    monkeypatch.setattr("medaka_heart.runtime.installed_engines", lambda: ["openvino", "onnx"])
    with caplog.at_level("WARNING"):
        seg = Segmenter(threads=1, runtime="auto")  # the shipped model
    assert seg.provenance()["runtime"] == "onnx"
    assert not caplog.text  # a working engine was found: nothing to warn about
    with pytest.raises(ValueError, match=r"runtime 'openvino' not possible.*no openvino here"):
        Segmenter(threads=1, runtime="openvino")


@pytest.mark.skipif("openvino" not in installed_engines(), reason="needs OpenVINO")
def test_one_openvino_network_serves_threads_at_once():
    """Dask workers run videos in threads through one segmenter: each call gets its own
    answer, as when the calls come one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    from medaka_heart.runtime import default_model_path

    network = OnnxNetwork(default_model_path() / ONNX_FILE, 1, "openvino")
    rng = np.random.default_rng(0)
    inputs = [rng.random((n, 4, side, side), dtype=np.float32)
              for n, side in ((3, 32), (2, 64), (1, 48), (4, 32))] * 6
    alone = [network(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(network, inputs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_auto_takes_an_engine_already_checked_without_importing_torch(model_dir, tmp_path,
                                                                     monkeypatch):
    """A folder whose stamp holds ONNX Runtime's check only (0.8.1, or OpenVINO installed
    later) runs on ONNX Runtime at once, not on OpenVINO after a check against torch."""
    import medaka_heart.runtime_onnx as runtime_onnx

    folder = _copy(model_dir, tmp_path / "folder")
    net = Segmenter(folder, threads=1, runtime="torch").runtime.net
    export_onnx(net, 2, 32, folder / ONNX_FILE)
    runtime_onnx.write_stamp(folder / ONNX_FILE, folder / "model.pt", "onnx",
                             check_against_torch(OnnxNetwork(folder / ONNX_FILE, 1), net, 2, 32))
    monkeypatch.setattr(runtime_onnx, "check_against_torch",
                        lambda *a, **k: pytest.fail("checked against torch"))
    seg = Segmenter(folder, threads=1, runtime="auto")
    assert seg.provenance()["runtime"] == "onnx"
    assert not seg.runtime._torch_nets
