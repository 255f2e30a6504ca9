"""Rich renderables that describe a :class:`DataBundle` (``ftui data preview`` and the app).

Rich only (no Textual). Sample selection is seeded, so the same ``--seed`` shows the same samples
with the same augmentation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.data.bundle import DataBundle
from core.data.render import SampleGrid, to_rgb_uint8
from core.data.seeding import mix_seed
from core.richtext import PlainTable, plain

SPLITS = ("train", "val", "test")
PLAIN_HINT = ("(images are drawn only on a colour terminal: save them with --out preview.png, "
              "or keep the colours in a pipe with FORCE_COLOR=1)")


def imbalance_ratio(counts: list[int]) -> float:
    """Largest class count over the smallest (inf when a class is absent)."""
    if not counts or max(counts) == 0:
        return float("nan")
    return float("inf") if min(counts) == 0 else max(counts) / min(counts)


def sizes_table(bundle: DataBundle) -> Table:
    """Samples, classes and imbalance per split."""
    info = bundle.info
    title = f"{info.get('source', '?')} · {bundle.task} · input {tuple(bundle.input_shape)} · {bundle.num_classes} classes"
    table = PlainTable(title=plain(title, "table.title"), title_justify="left")
    table.add_column("split")
    table.add_column("samples", justify="right")
    table.add_column("classes present", justify="right")
    table.add_column("imbalance (max/min)", justify="right")
    for split in SPLITS:
        counts = info.get("class_counts", {}).get(split)
        if counts is None:
            size = info.get("sizes", {}).get(split)
            if size is not None:  # a dataset without `targets`: classes are not counted (that would read it all)
                table.add_row(split, f"{size:,}", "—", "—")
            continue
        present = sum(1 for c in counts if c)
        ratio = imbalance_ratio(counts)
        table.add_row(split, f"{sum(counts):,}", f"{present}/{len(counts)}", "—" if np.isnan(ratio) else f"{ratio:.2f}")
    return table


def class_table(bundle: DataBundle, max_rows: int = 30) -> Table:
    """Samples per class and split."""
    counts = bundle.info.get("class_counts", {})
    splits = [s for s in SPLITS if s in counts]
    table = PlainTable(title="class counts", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    for i, name in enumerate(bundle.class_names[:max_rows]):
        table.add_row(str(i), name, *(f"{counts[s][i]:,}" for s in splits))
    if bundle.num_classes > max_rows:
        table.add_row("…", f"{bundle.num_classes - max_rows} more", *("" for _ in splits))
    return table


def channel_table(bundle: DataBundle, measured: dict | None) -> Table:
    """Per-channel training statistics (fitted or measured) and the normalisation applied."""
    table = PlainTable(title="pixel statistics (training split, values in [0, 1])", title_justify="left")
    table.add_column("channel")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    table.add_column("normalize mean", justify="right")
    table.add_column("normalize std", justify="right")
    stats = bundle.fitted.get("normalization") or measured or {}
    norm = bundle.normalization or {}
    channels = bundle.input_shape[0]
    names = ["R", "G", "B"] if channels == 3 else ["grey"] if channels == 1 else [str(i) for i in range(channels)]
    for c in range(channels):
        table.add_row(
            names[c],
            _fmt(stats.get("mean"), c),
            _fmt(stats.get("std"), c),
            _fmt(norm.get("mean"), c),
            _fmt(norm.get("std"), c),
        )
    if stats.get("samples"):
        table.caption = f"statistics over {stats['samples']:,} training samples"
    return table


def feature_table(bundle: DataBundle, max_rows: int = 25) -> Table:
    """Per-feature mean/std of the cleaned, scaled training matrix (tabular data)."""
    feats = bundle.train.features.double()
    names = bundle.info.get("features") or [str(i) for i in range(feats.shape[1])]
    table = PlainTable(title="features (training split, after cleaning and scaling)", title_justify="left")
    for col, just in (("feature", "left"), ("mean", "right"), ("std", "right"), ("min", "right"), ("max", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for j, name in enumerate(names[:max_rows]):
        x = feats[:, j]
        table.add_row(name, f"{x.mean():.3f}", f"{x.std(unbiased=False):.3f}", f"{x.min():.3f}", f"{x.max():.3f}")
    if len(names) > max_rows:
        table.add_row("…", f"{len(names) - max_rows} more", "", "", "")
    return table


def pick_indices(length: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices (or all), drawn from ``seed``."""
    rng = np.random.default_rng(mix_seed(seed, 0x9E71))
    n = min(n, length)
    return sorted(rng.choice(length, size=n, replace=False).tolist()) if n else []


def draw_samples(bundle: DataBundle, split: str, n: int, seed: int) -> tuple[list[np.ndarray], list[str], list[int]]:
    """``n`` samples of ``split`` as the model sees them (augmented for ``train``, epoch = ``seed``).

    Returns:
        ``(images, labels, indices)``: ``(H, W, 3)`` uint8 images, class names, indices into the split.
    """
    ds = getattr(bundle, split)
    images, labels, indices = [], [], pick_indices(len(ds), n, seed)
    for i in indices:
        x, y = ds[(i, seed)]
        images.append(to_rgb_uint8(x.numpy(), bundle.normalization))
        labels.append(bundle.class_names[y])
    return images, labels, indices


def sample_grid(bundle: DataBundle, split: str, n: int, seed: int) -> SampleGrid:
    """The samples of :func:`draw_samples` as a half-block grid (a list of them without colours)."""
    images, labels, indices = draw_samples(bundle, split, n, seed)
    return SampleGrid(images, labels, details=[f"#{i} {label}" for i, label in zip(indices, labels)],
                      plain_hint=PLAIN_HINT)


def samples_picture(bundle: DataBundle, split: str, n: int, seed: int, title: str = ""):
    """The samples of :func:`draw_samples` as a captioned PNG-ready picture (a Pillow image)."""
    from core.pictures import Tile, grid_image

    images, labels, indices = draw_samples(bundle, split, n, seed)
    tiles = [Tile([img], [label, f"#{i}"]) for img, label, i in zip(images, labels, indices)]
    picture, _ = grid_image(tiles, columns=8, title=title or None)
    return picture


def tabular_rows(bundle: DataBundle, split: str, n: int, seed: int, max_cols: int = 8) -> Table:
    """``n`` cleaned rows of ``split`` with their labels."""
    ds = getattr(bundle, split)
    names = (bundle.info.get("features") or [])[:max_cols]
    table = PlainTable(title=f"{split} rows (cleaned and scaled)", title_justify="left")
    table.add_column("row", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("label")
    rows = getattr(ds, "rows", None)
    for i in pick_indices(len(ds), n, seed):
        x, y = ds[i]
        table.add_row(str(rows[i] if rows else i), *(f"{float(v):.3f}" for v in x[: len(names)]), bundle.class_names[y])
    return table


def preview_renderable(bundle: DataBundle, split: str, n: int, seed: int, measured: dict | None = None) -> RenderableType:
    """Everything ``ftui data preview`` prints, as one renderable."""
    parts: list[Any] = [sizes_table(bundle), class_table(bundle)]
    if bundle.task == "image":
        parts.append(channel_table(bundle, measured))
        aug = "augmented, as in training" if split == "train" and bundle.info.get("augmented") else "deterministic"
        parts.append(Text(f"\n{split} samples ({aug}; seed {seed})", style="bold"))
        parts.append(sample_grid(bundle, split, n, seed))
    elif hasattr(bundle.train, "features"):
        parts.append(feature_table(bundle))
        parts.append(tabular_rows(bundle, split, n, seed))
    else:
        parts.append(item_rows(bundle, split, n, seed))
    return Group(*parts)


def item_rows(bundle: DataBundle, split: str, n: int, seed: int) -> Table:
    """``n`` items of ``split`` of a dataset of your own: what the inputs hold, and the label."""
    ds = getattr(bundle, split)
    table = PlainTable(title=f"{split} items (as the model receives them; seed {seed})", title_justify="left")
    table.add_column("index", justify="right")
    table.add_column("inputs")
    table.add_column("label")
    for i in pick_indices(len(ds), n, seed):
        x, y = ds[(i, seed)]
        table.add_row(str(i), _inputs_text(x), bundle.class_names[y])
    return table


def _inputs_text(x: Any, width: int = 12) -> str:
    import torch

    if isinstance(x, dict):
        return "\n".join(f"{k}: {_inputs_text(v, width)}" for k, v in x.items())
    if isinstance(x, (tuple, list)):
        return "\n".join(_inputs_text(v, width) for v in x)
    if isinstance(x, torch.Tensor):
        flat = x.flatten()
        if x.dtype == torch.bool:
            shown = " ".join("1" if v else "0" for v in flat[:width].tolist())
        elif x.is_floating_point():
            shown = " ".join(f"{v:.2f}" for v in flat[:width].tolist())
        else:
            shown = " ".join(str(v) for v in flat[:width].tolist())
        more = " …" if flat.numel() > width else ""
        return f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}  {shown}{more}"
    return repr(x)[:60]


def _fmt(values: list[float] | None, c: int) -> str:
    return "—" if not values or c >= len(values) else f"{values[c]:.4f}"
