"""The U-Net module and its losses."""

from __future__ import annotations

import pytest
import torch

from medaka_heart.model.losses import (
    bce_loss,
    dice_loss,
    get_loss,
    tversky_loss,
    weighted_bce_loss,
)
from medaka_heart.model.unet import UNet, UNetConfig, count_parameters, fuse_batchnorm

torch.set_num_threads(1)


@pytest.mark.parametrize(("depth", "base", "separable"),
                         [(1, 4, False), (2, 4, True), (3, 2, False)])
def test_output_shape_is_input_shape(depth, base, separable):
    torch.manual_seed(0)
    model = UNet(depth=depth, base_filters=base, separable=separable).eval()
    x = torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        assert model(x).shape == (2, 1, 32, 48)
        prob = model.probabilities(x)
    assert float(prob.min()) >= 0.0
    assert float(prob.max()) <= 1.0


def test_width_and_depth_change_parameter_count():
    small = count_parameters(UNet(depth=2, base_filters=4))
    wider = count_parameters(UNet(depth=2, base_filters=8))
    deeper = count_parameters(UNet(depth=3, base_filters=4))
    separable = count_parameters(UNet(depth=2, base_filters=8, separable=True))
    assert small < wider
    assert small < deeper
    assert separable < wider


def test_config_and_kwargs_are_exclusive():
    with pytest.raises(TypeError):
        UNet(UNetConfig(), depth=2)
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({"depth": 2, "colour": 3})


def test_fused_batchnorm_gives_same_output():
    torch.manual_seed(1)
    model = UNet(depth=2, base_filters=4)
    model.train()
    for _ in range(3):  # move the BatchNorm running statistics away from identity
        model(torch.rand(4, 1, 16, 16) * 3 + 1)
    model.eval()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fuse_batchnorm(model)(x), model(x), atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fuse_batchnorm(model).modules())


def _masks():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    return target


def test_dice_loss_perfect_and_wrong():
    target = _masks()
    perfect = (target * 2 - 1) * 50  # logits
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-6)
    # everything wrong: intersection 0, dice = 1 / (|P| + |T| + 1), over the batch of 2 ...
    wrong = -perfect
    assert float(dice_loss(wrong, target)) == pytest.approx(1 - 1 / (96 + 32 + 1), abs=1e-4)
    # ... or per image
    expected = 1 - 1 / (48 + 16 + 1)
    assert float(dice_loss(wrong, target, per_image=True)) == pytest.approx(expected, abs=1e-4)


def test_batch_dice_rewards_a_tiny_object_next_to_an_empty_image():
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 3, 3] = 1  # one foreground pixel in image 0, none in image 1
    found = torch.full_like(target, -20.0)
    found[0, 0, 3, 3] = 20.0
    missed = torch.full_like(target, -20.0)
    assert float(dice_loss(found, target)) < 0.01
    assert float(dice_loss(missed, target)) > 0.4


def test_dice_smoothing_makes_empty_on_empty_perfect():
    empty = torch.zeros(1, 1, 4, 4)
    assert float(dice_loss(torch.full_like(empty, -50.0), empty)) == pytest.approx(0.0, abs=1e-6)


def test_tversky_half_half_is_dice():
    torch.manual_seed(2)
    logits, target = torch.randn(3, 1, 8, 8), _masks()[:1].repeat(3, 1, 1, 1)
    torch.testing.assert_close(tversky_loss(logits, target, smooth=0.0),
                               dice_loss(logits, target, smooth=0.0))
    # weighting false negatives more raises the loss of an under-segmentation
    under = torch.full_like(target, -5.0)
    assert float(tversky_loss(under, target, alpha=0.1, beta=0.9)) > float(
        tversky_loss(under, target, alpha=0.9, beta=0.1))


def test_bce_variants():
    torch.manual_seed(3)
    logits, target = torch.randn(2, 1, 8, 8), _masks()
    torch.testing.assert_close(weighted_bce_loss(logits, target, pos_weight=1.0),
                               bce_loss(logits, target))
    assert float(weighted_bce_loss(logits, target)) > float(bce_loss(logits, target)) * 0.99
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("focal")
