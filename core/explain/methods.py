"""Attribution methods, computed by Captum (PyTorch's interpretability library).

Each function takes a batch of inputs and the classes to explain and returns float32 maps:
``(N, H, W)`` at input resolution for images, ``(N, F)`` for feature vectors.

- ``gradcam``: Captum's ``LayerGradCam`` at a layer (ReLU applied, as in Selvaraju et al.),
  upsampled bilinearly to the input with ``LayerAttribution.interpolate``.
- ``saliency``: Captum's ``Saliency`` (absolute input gradient), the maximum over channels.
- ``integrated_gradients``: Captum's ``IntegratedGradients`` from an all-zero baseline (the mean
  input, after normalisation), summed over channels; per feature for tabular data.
- ``activations``: Captum's ``LayerActivation``: the feature maps of a layer (not a class attribution).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from core.errors import UserError
from core.explain.layers import LayerInfo, TokenGrid

METHODS = ("gradcam", "saliency", "integrated_gradients", "activations")
ALIASES = {"grad-cam": "gradcam", "grad_cam": "gradcam", "ig": "integrated_gradients",
           "integrated-gradients": "integrated_gradients", "gradients": "saliency", "activation": "activations"}
#: Integrated Gradients: points on the path from the baseline, and how many go through the model at once.
IG_STEPS = 32
IG_INTERNAL_BATCH = 256


def canonical_method(name: str) -> str:
    """The method's canonical name; a UserError lists the methods otherwise."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise UserError(f"--method {name!r}: not a method. Fix: use one of {', '.join(METHODS)} (ig for short).")
    return key


def captum() -> Any:
    """``captum.attr``, or a UserError that says how to install it."""
    try:
        import captum.attr as attr
    except ImportError:
        raise UserError(
            "ftui explain needs Captum, which is not installed. Fix: pip install 'ftui[explain]' "
            "(or pip install captum)."
        ) from None
    return attr


def _layer_hooked(model: nn.Module, info: LayerInfo) -> tuple[nn.Module, Any]:
    """The module Captum should hook for ``info``, and a hook handle to remove afterwards (or None)."""
    layer = model.get_submodule(info.path)
    if info.kind == "tokens":
        grid = TokenGrid(info.prefix, info.side)
        return grid, grid.attach(layer)
    return layer, None


def gradcam(model: nn.Module, forward: Callable[..., torch.Tensor], x: torch.Tensor, target: torch.Tensor,
            info: LayerInfo) -> torch.Tensor:
    """Grad-CAM maps ``(N, H, W)`` for ``target`` classes at layer ``info``."""
    attr = captum()
    layer, handle = _layer_hooked(model, info)
    try:
        cam = attr.LayerGradCam(forward, layer).attribute(x, target=target, relu_attributions=True)
    finally:
        if handle is not None:
            handle.remove()
    up = attr.LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return up[:, 0].float()


def saliency(forward: Callable[..., torch.Tensor], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Absolute input gradients: ``(N, H, W)`` (maximum over channels) or ``(N, F)``."""
    x = x.detach().requires_grad_()
    grads = captum().Saliency(forward).attribute(x, target=target, abs=True).detach().float()
    return grads.amax(dim=1) if grads.dim() == 4 else grads


def integrated_gradients(forward: Callable[..., torch.Tensor], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Integrated Gradients from a zero baseline: ``(N, H, W)`` (summed over channels) or ``(N, F)``."""
    x = x.detach().requires_grad_()
    attributions = captum().IntegratedGradients(forward).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=IG_STEPS,
        internal_batch_size=max(1, min(IG_INTERNAL_BATCH, IG_STEPS * x.shape[0])),
    ).detach().float()
    return attributions.sum(dim=1) if attributions.dim() == 4 else attributions


def activations(model: nn.Module, forward: Callable[..., torch.Tensor], x: torch.Tensor,
                info: LayerInfo) -> torch.Tensor:
    """The layer's feature maps ``(N, C, h, w)`` (token layers as their grid)."""
    attr = captum()
    layer, handle = _layer_hooked(model, info)
    try:
        acts = attr.LayerActivation(forward, layer).attribute(x)
    finally:
        if handle is not None:
            handle.remove()
    return acts.detach().float()
