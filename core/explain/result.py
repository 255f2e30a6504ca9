"""What an explanation is, and the files it is written to (NumPy and Pillow only, no torch).

``DIR/maps.npz`` (see docs/explain.md for every key) holds the arrays, ``DIR/grid-NN.png`` the
pictures a person opens, ``DIR/summary.json`` one record per sample with the PNG file and the pixel
box of each panel, so a picture can be traced back to the arrays it was drawn from.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.explain.overlay import heat, display_map, overlay
from core.pictures import RIGHT, WRONG, Tile, bar_panel, grid_image, save_png
from core.runs import atomic_write, atomic_write_text

MAPS_FILE = "maps.npz"
SUMMARY_FILE = "summary.json"
TILES_PER_PNG = 16
#: Features drawn per sample in bar charts (the largest by magnitude).
TOP_FEATURES = 12
METHOD_TITLES = {"gradcam": "Grad-CAM", "saliency": "saliency", "integrated_gradients": "Integrated Gradients",
                 "activations": "activations"}


@dataclass
class Predictions:
    """The model's view of a whole split."""

    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray
    losses: np.ndarray

    def confusion(self, classes: int) -> np.ndarray:
        """Counts, rows = true class, columns = predicted class."""
        matrix = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(matrix, (self.labels, self.preds), 1)
        return matrix

    def accuracy(self) -> float:
        """Share of samples predicted right."""
        return float((self.labels == self.preds).mean()) if len(self.labels) else float("nan")


@dataclass
class Explanation:
    """Attributions (or activations) for some samples of a split, with the model's predictions.

    Attributes:
        maps: ``(N, H, W)`` for images (input resolution) or ``(N, F)`` for feature vectors; None for
            ``activations``.
        images: ``(N, H, W, 3)`` uint8, the inputs as drawn (normalisation undone); None for features.
        features: ``(N, F)`` the (cleaned, scaled) feature vectors; None for images.
        activations: ``(N, K, h, w)`` the ``K`` strongest channels of the layer per sample; ``channels``
            their indices.
        targets: The class each map explains (the prediction, or the label with ``target="label"``).
    """

    checkpoint: str
    split: str
    method: str
    layer: str | None
    target: str
    selection: str
    class_names: list[str]
    input_kind: str
    indices: np.ndarray
    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray
    losses: np.ndarray
    targets: np.ndarray
    maps: np.ndarray | None = None
    images: np.ndarray | None = None
    features: np.ndarray | None = None
    feature_names: list[str] | None = None
    activations: np.ndarray | None = None
    channels: np.ndarray | None = None
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    def title(self) -> str:
        """``Grad-CAM at stage3 · test · worst 16 by loss``."""
        where = f" at {self.layer}" if self.layer else ""
        return f"{METHOD_TITLES.get(self.method, self.method)}{where} · {self.split} · {self.selection}"

    def confidence(self, i: int) -> float:
        """The probability of the predicted class of sample ``i``."""
        return float(self.probs[i, self.preds[i]])

    def caption(self, i: int, *, plain: bool = False) -> list[str]:
        """Two lines under a tile: verdict and classes, then confidence, loss and index.

        ``plain`` keeps to ASCII (the PNGs' built-in font has no check marks or arrows).
        """
        names = self.class_names
        label, pred = int(self.labels[i]), int(self.preds[i])
        if plain:
            first = f"ok: {names[label]}" if label == pred else f"true {names[label]}, predicted {names[pred]}"
        else:
            first = f"✓ {names[label]}" if label == pred else f"✗ {names[label]} → {names[pred]}"
        second = f"p={self.confidence(i):.2f}  loss={float(self.losses[i]):.2f}  #{int(self.indices[i])}"
        if self.method == "gradcam" and self.maps is not None and float(self.maps[i].max()) <= 0.0:
            # nothing at this layer speaks for the class: the overlay is flat, not broken
            second += "  (empty map)"
        return [first, second]

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per sample."""
        out = []
        for i in range(len(self)):
            out.append({
                "index": int(self.indices[i]), "label": self.class_names[int(self.labels[i])],
                "pred": self.class_names[int(self.preds[i])], "correct": bool(self.labels[i] == self.preds[i]),
                "confidence": round(self.confidence(i), 6), "loss": round(float(self.losses[i]), 6),
                "target": self.class_names[int(self.targets[i])],
            })
        return out

    def feature_ranking(self) -> list[tuple[str, float]]:
        """Features by mean absolute attribution over the samples (tabular explanations)."""
        if self.maps is None or self.maps.ndim != 2:
            return []
        names = self.feature_names or [f"f{j}" for j in range(self.maps.shape[1])]
        mean = np.abs(self.maps).mean(axis=0)
        order = np.argsort(-mean, kind="stable")
        return [(names[j], float(mean[j])) for j in order]

    # ---- pictures -----------------------------------------------------------------------------

    def tiles(self) -> list[Tile]:
        """One tile per sample: the input and its overlay, its feature maps, or its feature bars."""
        tiles = []
        for i in range(len(self)):
            colour = RIGHT if self.labels[i] == self.preds[i] else WRONG
            tiles.append(Tile(self.panels(i), self.caption(i, plain=True), colour))
        return tiles

    def panels(self, i: int) -> list[np.ndarray]:
        """The images of sample ``i``'s tile (what the PNGs and the app draw)."""
        if self.method == "activations" and self.activations is not None and self.images is not None:
            h, w = self.images.shape[1:3]
            maps = [_resize_nearest(heat(display_map(a, "activations")), h, w) for a in self.activations[i]]
            return [self.images[i], *maps]
        if self.images is not None and self.maps is not None:
            return [self.images[i], overlay(self.images[i], self.maps[i], self.method)]
        if self.maps is not None:
            names = self.feature_names or [f"f{j}" for j in range(self.maps.shape[1])]
            order = np.argsort(-np.abs(self.maps[i]), kind="stable")[:TOP_FEATURES]
            return [bar_panel([names[j] for j in order], [float(self.maps[i, j]) for j in order],
                              title=f"attribution to {self.class_names[int(self.targets[i])]}")]
        raise ValueError("nothing to draw")

    # ---- files --------------------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        """What goes into ``maps.npz``."""
        arrays: dict[str, np.ndarray] = {
            "indices": self.indices, "labels": self.labels, "preds": self.preds, "probs": self.probs,
            "losses": self.losses, "targets": self.targets,
            "class_names": np.asarray(self.class_names, dtype=np.str_),
            "method": np.asarray(self.method), "layer": np.asarray(self.layer or ""),
            "split": np.asarray(self.split),
        }
        for key in ("maps", "images", "features", "activations", "channels"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = value
        if self.feature_names:
            arrays["feature_names"] = np.asarray(self.feature_names, dtype=np.str_)
        return arrays

    def save(self, out: Path | str) -> list[Path]:
        """Write ``maps.npz``, the PNG grids and ``summary.json`` into ``out``; returns the files."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("grid-*.png"):
            old.unlink()  # a smaller selection than last time must not leave stale pages behind
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.arrays())
        atomic_write(out / MAPS_FILE, lambda fh: fh.write(buffer.getvalue()))
        records = self.records()
        files = [out / MAPS_FILE]
        tiles = self.tiles()
        pages = (len(tiles) + TILES_PER_PNG - 1) // TILES_PER_PNG
        for page in range(pages):
            start = page * TILES_PER_PNG
            chunk = tiles[start:start + TILES_PER_PNG]
            name = f"grid-{page + 1:02d}.png"
            suffix = f" · page {page + 1}/{pages}" if pages > 1 else ""
            columns = 2 if self.method == "activations" or self.input_kind == "features" else 4
            picture, boxes = grid_image(chunk, columns=columns, title=self.title() + suffix)
            files.append(save_png(picture, out / name))
            for k, panel_boxes in enumerate(boxes):
                records[start + k]["png"] = name
                records[start + k]["panels"] = [b.as_list() for b in panel_boxes]
        summary = {"checkpoint": self.checkpoint, "split": self.split, "method": self.method, "layer": self.layer,
                   "target": self.target, "selection": self.selection, "class_names": self.class_names,
                   "input_kind": self.input_kind, "samples": records,
                   "panels": "each sample's panels as [x, y, width, height, scale] in its PNG"}
        if self.input_kind == "features":
            summary["feature_ranking"] = [{"feature": n, "mean_abs": round(v, 6)} for n, v in self.feature_ranking()]
        atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
        files.append(out / SUMMARY_FILE)
        self.files = [str(f) for f in files]
        return files


def load_maps(path: Path | str) -> dict[str, np.ndarray]:
    """Read ``maps.npz`` back (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * image.shape[0] // height).clip(0, image.shape[0] - 1)
    cols = (np.arange(width) * image.shape[1] // width).clip(0, image.shape[1] - 1)
    return image[rows][:, cols]
