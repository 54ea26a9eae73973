"""Checkpoints: exact round trips, model folders, refusal of pickled objects, hashes."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from medaka_heart.model.checkpoint import (
    ModelInfo,
    load_checkpoint,
    save_checkpoint,
    save_model_folder,
)
from medaka_heart.model.folder import model_hash
from medaka_heart.model.unet import UNet, UNetConfig

torch.set_num_threads(1)
ARCH = UNetConfig(depth=2, base_filters=4, dropout=0.0)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    model = UNet(ARCH)
    model.train()
    model(torch.rand(4, 1, 16, 16))  # non-trivial BatchNorm statistics
    return model.eval()


def _info(**kw):
    return ModelInfo(architecture=ARCH, input_size=64, training={"sources": [{"kind": "toy"}]},
                     metrics={"val_dice": 0.93}, **kw)


def test_round_trip_is_exact(tmp_path, tiny):
    path = save_checkpoint(tmp_path / "m.pt", tiny, _info())
    ckpt = load_checkpoint(path)
    assert ckpt.info == _info()
    loaded = ckpt.build_model()
    for (k, a), (k2, b) in zip(tiny.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2
        assert torch.equal(a, b)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(tiny(x), loaded(x))


def test_pickled_object_is_refused(tmp_path, tiny):
    path = tmp_path / "evil.pt"
    torch.save({"format": "medaka_heart.unet", "state_dict": tiny.state_dict(),
                "metadata": {"obj": argparse.Namespace(evil=True)}}, path)
    with pytest.raises(ValueError, match=r"evil\.pt.*pickled Python object") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_non_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError,
                       match=r"junk\.pt: not a model checkpoint \(torch cannot read it"):
        load_checkpoint(path)


def test_plain_tensor_file_without_tag_is_refused(tmp_path, tiny):
    path = tmp_path / "sd.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(ValueError, match=r"sd\.pt: not a medaka_heart checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_metadata_must_be_plain(tmp_path, tiny):
    with pytest.raises(TypeError, match="plain values"):
        save_checkpoint(tmp_path / "m.pt", tiny, ModelInfo(ARCH, training={"x": object()}))


def test_model_folder_round_trip(tmp_path, tiny):
    folder = save_model_folder(tmp_path / "model", tiny, _info())
    assert (folder / "config.json").is_file()
    ckpt = load_checkpoint(folder)
    assert ckpt.info == _info()
    assert all(torch.equal(a, b) for a, b in
               zip(tiny.state_dict().values(), ckpt.state_dict.values(), strict=True))


def test_folder_with_bare_state_dict_and_thresholds(tmp_path, tiny):
    folder = tmp_path / "stardist_style"
    folder.mkdir()
    torch.save(tiny.state_dict(), folder / "model.pt")
    meta = {"architecture": ARCH.to_dict(), "input_size": 32}
    (folder / "config.json").write_text(json.dumps(meta))
    (folder / "thresholds.json").write_text(json.dumps({"prob": 0.4}))
    info = load_checkpoint(folder).info
    assert (info.input_size, info.threshold, info.architecture) == (32, 0.4, ARCH)


def test_model_hash_tracks_content(tmp_path, tiny):
    a = save_checkpoint(tmp_path / "a.pt", tiny, _info())
    b = save_checkpoint(tmp_path / "b.pt", tiny, _info())
    assert model_hash(a) == model_hash(b)
    assert len(model_hash(a)) == 64
    c = save_checkpoint(tmp_path / "c.pt", tiny, _info(threshold=0.3))
    assert model_hash(c) != model_hash(a)
    folder = save_model_folder(tmp_path / "f", tiny, _info())
    before = model_hash(folder)
    (folder / "thresholds.json").write_text('{"prob": 0.6}')
    assert model_hash(folder) != before
