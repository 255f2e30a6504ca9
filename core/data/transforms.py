"""Image preprocessing and train-only augmentation (torchvision.transforms.v2) built from the config.

A pipeline is two parts (:class:`ImagePipeline`): the per-sample steps, which end in uint8 — to
image, channel conversion, resize + centre crop, geometric and colour augmentation, the pixel
affine, random erasing (filling with the mean colour, which normalisation maps to 0) — and the
:class:`Normalizer`, which turns uint8 into normalised float32. Data-loader workers run only the
first part and send uint8 images, a quarter of the bytes of float32 through shared memory, pinned
memory and PCIe; the loader normalises whole batches on the training device
(:class:`core.data.loader.EpochLoader`). Indexing a dataset runs both parts, so an item is the same
normalised float tensor either way. Validation and test use the same pipeline without the random
steps.
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
    """With probability ``p``: ``x * scale + offset`` on [0, 1] values, scale and offset drawn uniformly,
    clamped to [0, 1]. A uint8 image stays uint8 (rounded to the nearest of its 256 levels)."""

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
        if img.dtype == torch.uint8:
            x = img.as_subclass(torch.Tensor).to(torch.float32)
            return x.mul_(a).add_(b * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
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


class Normalizer:
    """uint8 images ``(C, H, W)`` or batches ``(N, C, H, W)``, on any device, to float32 in [0, 1] and then
    ``(x - mean) / std`` per channel (no statistics: [0, 1] only); optionally in channels_last.

    The same element-wise float32 steps as :class:`ToFloatNormalized`, so a batch normalised on a GPU
    equals the stacked items normalised one by one on the CPU.
    """

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None):
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]
        self._stats: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def place(self, device: torch.device | str) -> None:
        """Put the statistics on ``device`` now (one blocking copy), not inside the first batch."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())  # the key batches will look it up by
        if self.mean is not None:
            self._on(device)

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self._stats.get(device)
        if stats is None:
            assert self.mean is not None and self.std is not None
            mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
            inv_std = 1.0 / torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
            # made once per device (a host-to-device copy), then reused by every batch
            stats = self._stats[device] = (mean.to(device), inv_std.to(device))
        return stats

    def __call__(self, img: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
        x = img.as_subclass(torch.Tensor)
        layout = torch.channels_last if channels_last and x.dim() == 4 else torch.preserve_format
        if x.dtype == torch.uint8:
            x = x.to(dtype=torch.float32, memory_format=layout).mul_(1.0 / 255.0)
        else:  # already float (a user's own step): normalise a copy
            x = x.to(dtype=torch.float32, memory_format=layout, copy=True)
        if self.mean is not None:
            mean, inv_std = self._on(x.device)
            x.sub_(mean).mul_(inv_std)
        return x

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stats": {}}  # device tensors stay in their process

    def __repr__(self) -> str:
        return "Normalizer()" if self.mean is None else f"Normalizer(mean={self.mean}, std={self.std})"


class AsTensor:
    """The last per-sample step: a plain uint8 tensor (not a tv_tensors.Image) for collation and workers."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return "AsTensor()"


class ImagePipeline:
    """``sample`` (per sample, ends in uint8) then ``finish`` (:class:`Normalizer`); calling it runs both."""

    def __init__(self, sample: v2.Compose, finish: Normalizer):
        self.sample = sample
        self.finish = finish

    def __call__(self, img: Any) -> torch.Tensor:
        return self.finish(self.sample(img))

    def __repr__(self) -> str:
        return f"ImagePipeline(sample={self.sample!r}, finish={self.finish!r})"


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
) -> ImagePipeline:
    """The pipeline for one split; ``size`` is the (H, W) after resizing (used by resized crops)."""
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
        steps.append(PixelAffine(tuple(aug.affine.scale), tuple(aug.affine.offset), aug.affine.p))
    if train and aug.random_erasing:
        e = aug.random_erasing
        # the mean colour: what normalisation turns into 0, the value erasing wrote in normalised units
        fill = [min(255, max(0, round(255.0 * m))) for m in normalization["mean"]] if normalization is not None else 0
        steps.append(v2.RandomErasing(p=e.p, scale=tuple(e.scale), ratio=tuple(e.ratio), value=fill))
    steps.append(AsTensor())
    finish = Normalizer(normalization["mean"], normalization["std"]) if normalization is not None else Normalizer()
    return ImagePipeline(v2.Compose(steps), finish)


def build_stats_transform(cfg: DataConfig) -> v2.Compose:
    """Deterministic pipeline without normalisation: what ``normalize: auto`` measures."""
    return v2.Compose([*base_steps(cfg), ToFloatNormalized()])


def _maybe(transform: Callable[[Any], Any], p: float) -> Callable[[Any], Any]:
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)
