"""Image preprocessing and train-only augmentation (torchvision.transforms.v2) built from the config.

Order: to image, channel conversion, resize + centre crop, geometric and colour augmentation on
uint8, to float in [0, 1], pixel affine, normalise, random erasing (which works in normalised
units). Validation and test use the same pipeline without the random steps.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torchvision.transforms import v2

from core.config import AugmentConfig, DataConfig, NormalizeStats
from core.errors import DataError

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ToChannels:
    """Convert a (C, H, W) image to 1 or 3 channels (grey to RGB by repetition, RGB to luma)."""

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        c = img.shape[-3]
        if c == self.channels:
            return img
        if self.channels == 3 and c == 1:
            return img.expand(*img.shape[:-3], 3, *img.shape[-2:]).clone()
        if self.channels == 1 and c == 3:
            return v2.functional.rgb_to_grayscale(img, num_output_channels=1)
        if c == 4:  # RGBA: drop alpha, then convert
            return self(img[..., :3, :, :])
        raise DataError(f"cannot convert a {c}-channel image to {self.channels} channels (data.channels).")

    def __repr__(self) -> str:
        return f"ToChannels({self.channels})"


class PixelAffine:
    """With probability ``p``: ``x * scale + offset`` with scale and offset drawn uniformly, clamped to [0, 1]."""

    def __init__(self, scale: tuple[float, float], offset: tuple[float, float], p: float):
        self.scale = scale
        self.offset = offset
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.p < 1.0 and torch.rand(()) >= self.p:
            return img
        r = torch.rand(2)
        a = self.scale[0] + (self.scale[1] - self.scale[0]) * float(r[0])
        b = self.offset[0] + (self.offset[1] - self.offset[0]) * float(r[1])
        return (img * a + b).clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        return f"PixelAffine(scale={self.scale}, offset={self.offset}, p={self.p})"


class ToFloatNormalized:
    """uint8 to float in [0, 1], then ``(x - mean) / std`` per channel, in one step.

    Equivalent to ``v2.ToDtype(float32, scale=True)`` followed by ``v2.Normalize(mean, std)``, at a
    fraction of their per-call overhead, which dominates on small images (this runs per sample).
    """

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None):
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.inv_std = None if std is None else 1.0 / torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.as_subclass(torch.Tensor)  # a plain tensor out, as Normalize gives for images
        x = x.to(torch.float32).mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)
        if self.mean is not None:
            x.sub_(self.mean).mul_(self.inv_std)
        return x

    def __repr__(self) -> str:
        if self.mean is None:
            return "ToFloatNormalized()"
        return f"ToFloatNormalized(mean={self.mean.flatten().tolist()}, std={(1 / self.inv_std).flatten().tolist()})"


def has_augmentation(aug: AugmentConfig) -> bool:
    """Whether the train pipeline has any random step."""
    return bool(
        aug.hflip
        or aug.vflip
        or aug.rotation
        or aug.random_resized_crop
        or aug.color_jitter
        or aug.random_erasing
        or aug.affine
    )


def resolve_normalization(cfg: DataConfig, channels: int, fitted: dict | None) -> dict | None:
    """The {"mean", "std"} applied, or None; ``fitted`` holds the auto statistics."""
    norm = cfg.normalize
    if norm == "none":
        return None
    if norm == "auto":
        if not fitted:
            return None
        return {"mean": list(fitted["mean"]), "std": list(fitted["std"])}
    if norm == "imagenet":
        if channels != 3:
            raise DataError(
                f"data.normalize: 'imagenet' statistics are for 3-channel images, but the images have "
                f"{channels} channel(s). Fix: use normalize: auto, or set data.channels: 3."
            )
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert isinstance(norm, NormalizeStats)
    if len(norm.mean) != channels:
        raise DataError(
            f"data.normalize: mean/std have {len(norm.mean)} values but the images have {channels} channel(s). "
            f"Fix: give {channels} values each, or use normalize: auto."
        )
    return {"mean": list(norm.mean), "std": list(norm.std)}


def base_steps(cfg: DataConfig) -> list[Callable[[Any], Any]]:
    """Deterministic steps up to (not including) float conversion: image, channels, size."""
    steps: list[Callable[[Any], Any]] = [v2.ToImage()]
    if cfg.channels is not None:
        steps.append(ToChannels(cfg.channels))
    if cfg.image_size is not None:
        steps += [v2.Resize(cfg.image_size, antialias=True), v2.CenterCrop(cfg.image_size)]
    return steps


def build_image_transform(
    cfg: DataConfig, *, train: bool, size: tuple[int, int], normalization: dict | None
) -> v2.Compose:
    """The full pipeline for one split; ``size`` is the (H, W) after resizing (used by resized crops)."""
    aug = cfg.augment
    steps = base_steps(cfg)
    if train:
        if aug.hflip:
            steps.append(v2.RandomHorizontalFlip(p=aug.hflip))
        if aug.vflip:
            steps.append(v2.RandomVerticalFlip(p=aug.vflip))
        if aug.rotation:
            steps.append(_maybe(v2.RandomRotation(aug.rotation.degrees), aug.rotation.p))
        if aug.random_resized_crop:
            c = aug.random_resized_crop
            crop = v2.RandomResizedCrop(size, scale=tuple(c.scale), ratio=tuple(c.ratio), antialias=True)
            steps.append(_maybe(crop, c.p))
        if aug.color_jitter:
            j = aug.color_jitter
            jitter = v2.ColorJitter(brightness=j.brightness, contrast=j.contrast, saturation=j.saturation, hue=j.hue)
            steps.append(_maybe(jitter, j.p))
    if train and aug.affine:
        # The pixel affine works on [0, 1] values, so normalisation has to wait for it.
        steps.append(ToFloatNormalized())
        steps.append(PixelAffine(tuple(aug.affine.scale), tuple(aug.affine.offset), aug.affine.p))
        if normalization is not None:
            steps.append(ToFloatNormalized(normalization["mean"], normalization["std"]))
    elif normalization is not None:
        steps.append(ToFloatNormalized(normalization["mean"], normalization["std"]))
    else:
        steps.append(ToFloatNormalized())
    if train and aug.random_erasing:
        e = aug.random_erasing
        steps.append(v2.RandomErasing(p=e.p, scale=tuple(e.scale), ratio=tuple(e.ratio)))
    return v2.Compose(steps)


def build_stats_transform(cfg: DataConfig) -> v2.Compose:
    """Deterministic pipeline without normalisation: what ``normalize: auto`` measures."""
    return v2.Compose([*base_steps(cfg), ToFloatNormalized()])


def _maybe(transform: Callable[[Any], Any], p: float) -> Callable[[Any], Any]:
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)
