"""Which layers of a model can be explained, and which one is explained by default.

One forward pass with hooks on every module records each output's shape and the order in which
modules start and finish. A layer whose output is a feature map ``(N, C, h, w)`` (``h * w > 1``) is
*spatial*; one whose output is a token sequence ``(N, T, D)`` whose last ``T - p`` tokens form a
square grid (``p`` class/register tokens in front) is a *token* layer. Grad-CAM and activations work
on both: token layers are seen through :class:`TokenGrid`, which presents the patch tokens as an
``(N, D, s, s)`` map.

The default is the last convolutional block (the last spatial layer to finish: ``layer4`` of a
ResNet at 224 pixels, ``features`` of a VGG) whose map has at least 4x4 cells — a 2x2 map only says
which quadrant mattered, so small inputs get an earlier block (``stage2`` of the quickstart's 16-pixel
CNN, not its 2x2 ``stage3``) — or, for a transformer, the first token layer inside the last block
that holds an attention module (``encoder_layer_11.ln_1`` of a ViT): after that block's attention,
patch tokens no longer reach the class token, so their gradients are zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from core.errors import ModelError

MAX_PREFIX_TOKENS = 8
#: The default Grad-CAM layer's map has at least this many cells (when the model has such a layer).
MIN_DEFAULT_CELLS = 16


@dataclass(frozen=True)
class LayerInfo:
    """A layer that Grad-CAM or activations can use.

    Attributes:
        path: Module path (``model.get_submodule(path)``).
        kind: ``"spatial"`` or ``"tokens"``.
        shape: Output shape without the batch dimension.
        prefix: Tokens in front of the grid (token layers).
        side: Side of the token grid (token layers).
        module: The module's class name (``Conv2d``, ``ReLU``, ``Sequential``...).
    """

    path: str
    kind: str
    shape: tuple[int, ...]
    prefix: int = 0
    side: int = 0
    module: str = ""

    def describe(self) -> str:
        """``layer4 (512x7x7)`` or ``encoder.layers.encoder_layer_11.ln_1 (197 tokens = 1 + 14x14, 768)``."""
        if self.kind == "tokens":
            return f"{self.path} ({self.shape[0]} tokens = {self.prefix} + {self.side}x{self.side}, {self.shape[1]})"
        return f"{self.path} ({'x'.join(str(d) for d in self.shape)})"

    def label(self) -> str:
        """:meth:`describe` with the module's class: ``stage3.5 (64x4x4) ReLU``."""
        return f"{self.describe()} {self.module}".strip()


@dataclass
class LayerProbe:
    """What one forward pass found: candidate layers in finishing order, and the default."""

    layers: list[LayerInfo]
    default: str | None

    def get(self, path: str) -> LayerInfo | None:
        """The candidate named ``path``, or None."""
        return next((info for info in self.layers if info.path == path), None)

    def names(self) -> list[str]:
        """Candidate paths, in the order the forward pass finishes them."""
        return [info.path for info in self.layers]


def token_grid(tokens: int) -> tuple[int, int] | None:
    """``(prefix, side)`` when the last ``tokens - prefix`` tokens form a ``side x side`` grid (side >= 2)."""
    for prefix in range(0, MAX_PREFIX_TOKENS + 1):
        rest = tokens - prefix
        side = math.isqrt(max(rest, 0))
        if side >= 2 and side * side == rest:
            return prefix, side
    return None


def probe_layers(model: nn.Module, forward: Callable[[Any], torch.Tensor], sample: Any) -> LayerProbe:
    """Run ``forward(sample)`` once and classify every module's output."""
    started: list[str] = []
    finished: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    modules = dict(model.named_modules())
    for path, module in modules.items():
        if not path:
            continue
        handles.append(module.register_forward_pre_hook(lambda m, a, p=path: started.append(p)))

        def record(m: nn.Module, args: Any, out: Any, p: str = path) -> None:
            if isinstance(out, torch.Tensor):
                finished.append((p, tuple(out.shape[1:])))

        handles.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            forward(sample)
    finally:
        for handle in handles:
            handle.remove()

    layers: list[LayerInfo] = []
    seen: set[str] = set()
    for path, shape in finished:
        if path in seen:  # a module called twice keeps its first shape
            continue
        seen.add(path)
        module = type(modules[path]).__name__
        if len(shape) == 3 and shape[1] * shape[2] > 1:
            layers.append(LayerInfo(path, "spatial", shape, module=module))
        elif len(shape) == 2:
            grid = token_grid(shape[0])
            if grid is not None:
                layers.append(LayerInfo(path, "tokens", shape, prefix=grid[0], side=grid[1], module=module))
    return LayerProbe(layers, _default_layer(layers, modules, started))


def _default_layer(layers: list[LayerInfo], modules: dict[str, nn.Module], started: list[str]) -> str | None:
    order = {info.path: k for k, info in enumerate(layers)}
    spatial = [info for info in layers if info.kind == "spatial"]
    fine = [info.path for info in spatial if info.shape[1] * info.shape[2] >= MIN_DEFAULT_CELLS]
    choice = fine[-1] if fine else (spatial[-1].path if spatial else None)
    attention = [p for p in started if p and "attention" in type(modules[p]).__name__.lower()]
    if attention:
        block = attention[-1].rpartition(".")[0]
        inside = [p for p in started if block and p.startswith(block + ".")]
        tokens = [p for p in inside if p in order and layers[order[p]].kind == "tokens"]
        if tokens and (choice is None or order[tokens[0]] > order[choice]):
            choice = tokens[0]
    return choice


def resolve_layer(probe: LayerProbe, layer: str | None, *, purpose: str) -> LayerInfo:
    """The candidate named ``layer`` (or the default); a ModelError lists the candidates otherwise."""
    if not probe.layers:
        raise ModelError(
            f"--method {purpose}: this model has no layer with a spatial output (a feature map or a grid of "
            "tokens), so there is nothing to draw a map from. Fix: use --method saliency or --method "
            "integrated_gradients, which attribute to the input itself."
        )
    name = layer or probe.default or probe.layers[-1].path
    info = probe.get(name)
    if info is None:
        listing = ", ".join(i.describe() for i in probe.layers[-12:])
        more = f" (the last 12 of {len(probe.layers)})" if len(probe.layers) > 12 else ""
        raise ModelError(
            f"--layer {name!r}: not a layer of this model with a spatial output. Candidates{more}: {listing}. "
            f"Fix: pass one of them, or leave --layer out for the default ({probe.default})."
        )
    return info


class TokenGrid(nn.Module):
    """Shows a token layer's patch tokens as an ``(N, D, side, side)`` map to Captum.

    :meth:`attach` hooks the token layer so that its output passes through this module (an identity
    on the grid view) and is put back together afterwards: the model computes exactly what it did,
    and Captum's layer hooks on this module see a feature map with the gradients flowing through it.
    """

    def __init__(self, prefix: int, side: int) -> None:
        super().__init__()
        self.prefix = prefix
        self.side = side

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return grid

    def attach(self, layer: nn.Module) -> Any:
        """Route ``layer``'s output through this module; returns the hook handle (``.remove()`` it)."""

        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            n, _, d = out.shape
            head, patches = out[:, : self.prefix], out[:, self.prefix :]
            grid = self(patches.transpose(1, 2).reshape(n, d, self.side, self.side))
            return torch.cat([head, grid.flatten(2).transpose(1, 2)], dim=1)

        return layer.register_forward_hook(hook)
