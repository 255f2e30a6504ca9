"""Preprocessing and each augmentation, checked against the deterministic (validation) pipeline."""

from __future__ import annotations

import pytest
import torch

from core.config import config_from_dict
from core.data import build_data
from core.data.datasets import SplitDataset
from core.data.transforms import IMAGENET_MEAN, build_image_transform
from core.errors import ConfigError, DataError


def data_cfg(augment: dict | None = None, **data: object):
    raw = {
        "shapes": {"train_size": 12, "val_size": 4, "test_size": 0, "image_size": 16},
        "normalize": "none",
        "augment": augment or {},
        **data,
    }
    return config_from_dict({"data": raw}).data


def pair(augment: dict, index: int = 2, epoch: int = 0, **data: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(augmented train input, the same sample through the validation pipeline)."""
    cfg = data_cfg(augment, **data)
    bundle = build_data(cfg, seed=0)
    train = bundle.train
    plain = SplitDataset(
        train.base,
        train.indices,
        build_image_transform(cfg, train=False, size=bundle.input_shape[1:], normalization=bundle.normalization),
        seed=0,
        random=False,
        split="val",
    )
    return train[(index, epoch)][0], plain[index][0]


def test_flips() -> None:
    x, ref = pair({"hflip": 1.0})
    assert torch.equal(x, ref.flip(-1))
    x, ref = pair({"vflip": 1.0})
    assert torch.equal(x, ref.flip(-2))


def test_probability_zero_is_identity() -> None:
    x, ref = pair({"rotation": {"degrees": 30, "p": 0.0}, "color_jitter": {"p": 0.0}})
    assert torch.equal(x, ref)


def test_rotation_changes_pixels_but_not_shape() -> None:
    x, ref = pair({"rotation": {"degrees": 90}})
    assert x.shape == ref.shape and not torch.equal(x, ref)


def test_random_resized_crop_of_the_whole_image_is_identity() -> None:
    x, ref = pair({"random_resized_crop": {"scale": [1.0, 1.0], "ratio": [1.0, 1.0]}})
    assert x.shape == ref.shape == (3, 16, 16)
    assert torch.allclose(x, ref, atol=1e-6)
    x, ref = pair({"random_resized_crop": {"scale": [0.2, 0.3]}})
    assert x.shape == (3, 16, 16) and not torch.allclose(x, ref)


def test_brightness_jitter_scales_every_pixel_by_one_factor() -> None:
    x, ref = pair({"color_jitter": {"brightness": 0.4, "contrast": 0, "saturation": 0, "hue": 0}})
    mask = (ref > 0.05) & (x < 0.95) & (x > 0.05)  # away from rounding and clamping
    ratio = x[mask] / ref[mask]
    assert ratio.std() < 0.02 and 0.6 <= float(ratio.mean()) <= 1.4 and abs(float(ratio.mean()) - 1) > 1e-3


def test_pixel_affine_is_x_times_scale_plus_offset_clamped() -> None:
    x, ref = pair({"affine": {"scale": [2.0, 2.0], "offset": [0.1, 0.1]}})
    # on the uint8 image the workers send: rounded to the nearest of 256 levels
    assert torch.allclose(x, (ref * 2 + 0.1).clamp(0, 1), atol=0.5 / 255 + 1e-6)
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)


def test_random_erasing_zeroes_one_rectangle() -> None:
    x, ref = pair({"random_erasing": {"p": 1.0, "scale": [0.25, 0.25], "ratio": [1.0, 1.0]}})
    erased = (x != ref).any(0)
    assert torch.all(x[:, erased] == 0)
    rows, cols = erased.nonzero(as_tuple=True)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert int(box) == int(erased.sum()) == 64  # one 8x8 square: a quarter of 16x16


def test_resize_and_channel_conversion() -> None:
    small = build_data(data_cfg(image_size=8, channels=1), seed=0)
    assert small.input_shape == (1, 8, 8) and small.train[0][0].shape == (1, 8, 8)
    rgb_digits = build_data(config_from_dict({"data": {"source": "digits", "channels": 3}}).data, seed=0)
    x = rgb_digits.val[0][0]
    assert x.shape == (3, 8, 8) and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_normalize_auto_is_fitted_on_training_images() -> None:
    cfg = data_cfg(normalize="auto")
    bundle = build_data(cfg, seed=0)
    raw = torch.stack([bundle.train.base[i][0] for i in bundle.train.indices]).double() / 255
    mean, std = raw.mean((0, 2, 3)), raw.std((0, 2, 3), unbiased=False)
    assert bundle.normalization["mean"] == pytest.approx(mean.tolist(), abs=1e-6)
    assert bundle.normalization["std"] == pytest.approx(std.tolist(), abs=1e-6)
    assert bundle.fitted["normalization"]["samples"] == 12
    xs = torch.stack([bundle.train[i][0] for i in range(12)]).double()
    assert xs.mean((0, 2, 3)).abs().max() < 1e-5 and (xs.std((0, 2, 3), unbiased=False) - 1).abs().max() < 1e-5
    assert build_data(data_cfg(normalize="imagenet"), seed=0).normalization["mean"] == IMAGENET_MEAN
    # checkpoint["data"] carries the statistics; passing its "fitted" back reuses them exactly.
    ckpt = bundle.checkpoint_data()
    assert ckpt["normalization"] == bundle.normalization and ckpt["input_shape"] == [3, 16, 16]
    assert ckpt["class_names"] == bundle.class_names and ckpt["source"] == "shapes" and ckpt["task"] == "image"
    other_seed = build_data(cfg, seed=9, fitted=ckpt["fitted"])
    assert other_seed.normalization == bundle.normalization
    assert build_data(cfg, seed=9).normalization != bundle.normalization


def test_normalization_that_does_not_fit_the_channels() -> None:
    with pytest.raises(DataError, match=r"data\.normalize: mean/std have 3 values but the images have 1"):
        build_data(data_cfg(channels=1, normalize={"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}), seed=0)
    with pytest.raises(DataError, match="'imagenet' statistics are for 3-channel images"):
        build_data(data_cfg(channels=1, normalize="imagenet"), seed=0)


@pytest.mark.parametrize(
    ("augment", "key"),
    [
        ({"random_resized_crop": {"scale": [0.5, 1.5]}}, "data.augment.random_resized_crop.scale"),
        ({"rotation": {"degrees": 270}}, "data.augment.rotation.degrees"),
        ({"color_jitter": {"hue": 0.7}}, "data.augment.color_jitter.hue"),
        ({"random_erasing": {"ratio": [3.0, 1.0]}}, "data.augment.random_erasing.ratio"),
        ({"hflip": 1.5}, "data.augment.hflip"),
        ({"affine": {"scale": [1.2, 0.8]}}, "data.augment.affine.scale"),
    ],
)
def test_out_of_range_augmentation_is_a_config_error(augment: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        data_cfg(augment)
