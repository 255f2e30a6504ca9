"""The built-in ``shapes`` dataset: procedural RGB images of geometric shapes, generated per index.

Every sample is a pure function of ``(seed, split, index)``: nothing is stored, so a million samples
cost no memory and any worker can draw any sample. Each class is a signed-distance field (SDF)
sampled once on a small grid and memoised; a sample warps its pixel grid into the template
(rotation, scale, aspect, position), looks the distance up bilinearly and turns it into an
anti-aliased coverage mask (``clip(0.5 - distance_in_pixels, 0, 1)``), so edges are smooth at any
size without supersampling. Background texture, colours and noise are then composited in numpy.

``difficulty`` (0..1) shrinks and moves the shapes, widens the rotation range, lowers the contrast
between shape and background and adds texture and noise.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from core.config import SHAPE_CLASSES
from core.data.seeding import mix_seed

SHAPE_NAMES = SHAPE_CLASSES  # one list, kept in the (torch-free) config schema

SPLIT_IDS = {"train": 1, "val": 2, "test": 3}

# The template grid covers [-EXTENT, EXTENT]^2 in shape units (shapes fit in the unit circle).
_EXTENT = 1.3
_GRID = 96


def _regular_polygon(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.45) -> np.ndarray:
    t = -math.pi / 2 + math.pi * np.arange(2 * points) / points
    r = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _cross(arm: float = 0.34) -> np.ndarray:
    a, b = arm, 0.95
    return np.array(
        [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    )


def _arrow() -> np.ndarray:
    return np.array([(-0.95, -0.22), (0.15, -0.22), (0.15, -0.62), (0.95, 0.0), (0.15, 0.62), (0.15, 0.22), (-0.95, 0.22)])


def _heart(n: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))  # image y grows downwards
    pts = np.stack([x, y], axis=1) / 17.0
    pts[:, 1] += 0.1
    return pts


def _polygon_sdf(points: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Exact signed distance from each point to a simple polygon (negative inside)."""
    a = verts
    b = np.roll(verts, -1, axis=0)
    e = b - a  # (E, 2)
    w = points[:, None, :] - a[None, :, :]  # (P, E, 2)
    t = np.clip((w * e).sum(-1) / (e * e).sum(-1), 0.0, 1.0)
    d = w - t[..., None] * e
    dist = np.sqrt((d * d).sum(-1).min(axis=1))
    # Even-odd crossing test for inside/outside.
    py = points[:, 1:2]
    px = points[:, 0:1]
    cond = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    x_cross = a[None, :, 0] + (py - a[None, :, 1]) * e[None, :, 0] / np.where(e[None, :, 1] == 0, 1e-12, e[None, :, 1])
    inside = (cond & (px < x_cross)).sum(axis=1) % 2 == 1
    return np.where(inside, -dist, dist)


def _shape_sdf(name: str, points: np.ndarray) -> np.ndarray:
    x, y = points[:, 0], points[:, 1]
    r = np.sqrt(x * x + y * y)
    if name == "circle":
        return r - 0.9
    if name == "ring":
        return np.abs(r - 0.72) - 0.24
    if name == "ellipse":
        # Scaled-circle approximation; exact enough near the boundary, which is all that matters.
        a, b = 1.0, 0.55
        k = np.sqrt((x / a) ** 2 + (y / b) ** 2)
        return (k - 1.0) * b
    if name == "square":
        return _polygon_sdf(points, np.array([(-0.78, -0.78), (0.78, -0.78), (0.78, 0.78), (-0.78, 0.78)]))
    if name == "diamond":
        return _polygon_sdf(points, np.array([(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]))
    if name == "triangle":
        tri = _regular_polygon(3)
        tri[:, 1] += 0.2  # centre the triangle's area rather than its circumcircle
        return _polygon_sdf(points, tri)
    if name == "pentagon":
        return _polygon_sdf(points, _regular_polygon(5, 0.95))
    if name == "hexagon":
        return _polygon_sdf(points, _regular_polygon(6, 0.95, phase=0.0))
    if name == "star":
        return _polygon_sdf(points, _star())
    if name == "cross":
        return _polygon_sdf(points, _cross())
    if name == "arrow":
        return _polygon_sdf(points, _arrow())
    if name == "heart":
        return _polygon_sdf(points, _heart())
    raise KeyError(name)


@functools.lru_cache(maxsize=None)
def shape_template(name: str) -> np.ndarray:
    """The class's SDF sampled on a ``_GRID`` x ``_GRID`` grid (memoised; ~36 KB per class)."""
    axis = np.linspace(-_EXTENT, _EXTENT, _GRID)
    xx, yy = np.meshgrid(axis, axis)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return _shape_sdf(name, pts).reshape(_GRID, _GRID).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float32) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return xx.ravel(), yy.ravel()


def _lerp(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def shape_coverage(
    name: str, size: int, radius: float, cx: float, cy: float, theta: float = 0.0, aspect: float = 1.0
) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of every pixel (flattened, row-major) by the placed shape.

    Args:
        name: Shape class.
        size: Image side in pixels.
        radius: Pixels per template unit (the shape fits in a circle of this radius).
        cx: Centre x in pixels.
        cy: Centre y in pixels.
        theta: Rotation in radians.
        aspect: Horizontal stretch (1 / aspect vertically).
    """
    xs, ys = _pixel_grid(size)
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    # Inverse rotation and scaling map pixel centres into template coordinates (one affine map each).
    ax, ay = 1.0 / (radius * aspect), aspect / radius
    tx = (cos_t * ax) * xs + (sin_t * ax) * ys - (cos_t * cx + sin_t * cy) * ax
    ty = (-sin_t * ay) * xs + (cos_t * ay) * ys - (-sin_t * cx + cos_t * cy) * ay
    sdf = _bilinear(shape_template(name), tx, ty)
    return np.minimum(np.maximum(0.5 - sdf * radius, 0.0), 1.0)


def render_shape(name: str, size: int, difficulty: float, rng: np.random.Generator) -> np.ndarray:
    """Draw one sample of class ``name`` as a (3, H, W) uint8 array."""
    d = difficulty
    u = rng.random(20).tolist()
    # Geometry: radius in pixels, centre, rotation and a mild aspect change.
    radius = size * _lerp(_lerp(0.36, 0.2, d), _lerp(0.44, 0.42, d), u[0])
    slack = max(size / 2 - radius * 1.05, 0.0) * _lerp(0.15, 1.0, d)
    cx = size / 2 + slack * (2 * u[1] - 1)
    cy = size / 2 + slack * (2 * u[2] - 1)
    theta = math.radians(_lerp(10.0, 45.0, d)) * (2 * u[3] - 1)
    if name in ("circle", "ring"):
        theta = 2 * math.pi * u[3]  # rotation-invariant: the angle only moves the texture
    aspect = 1.0 + _lerp(0.03, 0.12, d) * (2 * u[4] - 1)

    coverage = shape_coverage(name, size, radius, cx, cy, theta, aspect)
    xs, ys = _pixel_grid(size)

    # Colours: background and shape with a minimum contrast that falls with difficulty.
    bg = np.array(u[5:8], dtype=np.float32)
    fg = np.array(u[8:11], dtype=np.float32)
    min_dist = _lerp(0.7, 0.3, d)
    diff = fg - bg
    if float(np.sqrt((diff * diff).sum())) < min_dist:
        fg = np.where(bg > 0.5, bg - min_dist / math.sqrt(3), bg + min_dist / math.sqrt(3)).astype(np.float32)

    # Background texture (a linear gradient plus oriented stripes), as one scalar field.
    g_amp = _lerp(0.05, 0.25, d) * u[11] / size
    g_ang = 2 * math.pi * u[12]
    s_amp = _lerp(0.0, 0.2, d) * u[13]
    s_ang = 2 * math.pi * u[14]
    s_freq = _lerp(0.3, 1.2, u[15])
    tex = (g_amp * math.cos(g_ang)) * xs + (g_amp * math.sin(g_ang)) * ys - g_amp * size * 0.5 * (
        math.cos(g_ang) + math.sin(g_ang)
    )
    tex += s_amp * np.sin((s_freq * math.cos(s_ang)) * xs + (s_freq * math.sin(s_ang)) * ys + 2 * math.pi * u[16])
    # Inside the shape the texture is replaced by gentle shading; noise covers everything.
    field = tex * (1.0 - coverage)
    field += coverage * ((0.24 * d * (u[17] - 0.5) / size) * (ys - size * 0.5))
    sigma = _lerp(0.0, 0.1, d)
    if sigma > 0:
        field += sigma * rng.standard_normal(size * size, dtype=np.float32)
    img = bg[:, None] + field[None, :] + (fg - bg)[:, None] * coverage[None, :]
    img *= 255.0
    img += 0.5
    return np.minimum(np.maximum(img, 0.0), 255.0).astype(np.uint8).reshape(3, size, size)


def _bilinear(grid: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
    n = grid.shape[0]
    scale = (n - 1) / (2 * _EXTENT)
    fx = np.minimum(np.maximum((tx + _EXTENT) * scale, 0.0), n - 1.001)
    fy = np.minimum(np.maximum((ty + _EXTENT) * scale, 0.0), n - 1.001)
    x0 = fx.astype(np.intp)
    y0 = fy.astype(np.intp)
    ax = fx - x0
    ay = fy - y0
    flat = grid.ravel()
    i00 = y0 * n + x0
    v00, v01 = flat[i00], flat[i00 + 1]
    v10, v11 = flat[i00 + n], flat[i00 + n + 1]
    top = v00 + (v01 - v00) * ax
    bottom = v10 + (v11 - v10) * ax
    out = top + (bottom - top) * ay
    # Outside the template the clamped lookup underestimates distance; keep it clearly outside.
    outside = np.maximum(np.abs(tx), np.abs(ty)) > _EXTENT
    return np.where(outside, np.maximum(out, 1.0), out)


class ShapesDataset:
    """Procedural shapes: item ``i`` is ``(uint8 tensor (3, H, W), label)``, labels cycle through classes.

    Args:
        classes: Shape names drawn, in label order.
        length: Number of samples.
        image_size: Image side in pixels.
        difficulty: 0 (easy) .. 1 (hard).
        seed: Data seed; with ``split`` and the index it fixes every pixel.
        split: ``train``, ``val`` or ``test`` (each split draws different samples).
    """

    def __init__(self, classes: list[str], length: int, image_size: int, difficulty: float, seed: int, split: str):
        unknown = [c for c in classes if c not in SHAPE_NAMES]
        if unknown:
            raise ValueError(f"unknown shape classes {unknown}")
        self.classes = list(classes)
        self.length = int(length)
        self.image_size = int(image_size)
        self.difficulty = float(difficulty)
        self.seed = int(seed)
        self.split = split
        self._split_id = SPLIT_IDS[split]
        # Labels cycle so every class is equally frequent; the loader shuffles.
        self.targets = [i % len(self.classes) for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        label = self.targets[index]
        rng = np.random.Generator(np.random.SFC64(mix_seed(self.seed, self._split_id, index)))
        img = render_shape(self.classes[label], self.image_size, self.difficulty, rng)
        return torch.from_numpy(img), label
