"""Attribution maps as pictures: display scaling, a colour map and the overlay on the input (no torch).

The PNGs of ``ftui explain``, the app's gallery and the tests all draw a map through
:func:`display_map` and :func:`overlay`, so what a picture shows is a pure function of what
``maps.npz`` holds.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Matplotlib's colour map for heat: perceptually ordered, readable on dark and light terminals.
COLORMAP = "turbo"
#: How much of the heat colour covers the input in an overlay.
ALPHA = 0.5
#: Gradient-based maps are spiky; the top percent is clipped so that one pixel does not dim the rest.
CLIP_PERCENTILE = 99.0


def display_map(raw: np.ndarray, method: str) -> np.ndarray:
    """Scale one raw map to ``[0, 1]`` for drawing.

    Grad-CAM maps are already non-negative and are divided by their maximum; gradient maps
    (saliency, Integrated Gradients) are drawn by magnitude, clipped at the 99th percentile.
    """
    m = np.asarray(raw, dtype=np.float32)
    if method == "gradcam" or method == "activations":
        m = np.maximum(m, 0.0) if method == "gradcam" else m - m.min()
        peak = float(m.max())
    else:
        m = np.abs(m)
        peak = float(np.percentile(m, CLIP_PERCENTILE)) if m.size else 0.0
    if peak <= 0.0 or not np.isfinite(peak):
        return np.zeros_like(m)
    return np.clip(m / peak, 0.0, 1.0)


@lru_cache(maxsize=4)
def colour_table(name: str = COLORMAP) -> np.ndarray:
    """256 RGB entries (uint8) of a Matplotlib colour map."""
    from matplotlib import colormaps

    table = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return (table * 255.0 + 0.5).astype(np.uint8)


def heat(scaled: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` map in ``[0, 1]`` as ``(H, W, 3)`` uint8 colours."""
    index = np.clip(np.rint(np.asarray(scaled, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    return colour_table()[index]


def overlay(image: np.ndarray, raw: np.ndarray, method: str, alpha: float = ALPHA) -> np.ndarray:
    """The heat colours of ``raw`` (scaled by :func:`display_map`) blended over an ``(H, W, 3)`` uint8 image."""
    colours = heat(display_map(raw, method)).astype(np.float32)
    base = np.asarray(image, dtype=np.float32)
    return np.clip(base * (1.0 - alpha) + colours * alpha + 0.5, 0, 255).astype(np.uint8)
