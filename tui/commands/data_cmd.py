"""``ftui data preview``: dataset statistics and augmented samples drawn in the terminal."""

from __future__ import annotations

from pathlib import Path

from core.errors import DataError, UserError

SPLITS = ("train", "val", "test")


def preview(config: Path, *, split: str, n: int, seed: int | None, overrides: list[str], out: Path | None = None) -> None:
    """Print dataset statistics and a grid of (augmented) samples of one split; ``out`` also writes a PNG."""
    from rich.console import Console

    from core.config import load_config

    if split not in SPLITS:
        raise UserError(f"--split: '{split}' is not a split. Fix: use one of {', '.join(SPLITS)}.")
    if out is not None and out.suffix.lower() != ".png":
        raise UserError(f"--out {out}: the samples are written as a PNG picture. Fix: name a .png file, e.g. --out preview.png.")
    cfg = load_config(config, overrides)
    # torch and torchvision load only now: `--help` and config errors stay fast.
    from core.data import build_data
    from core.data.stats import channel_stats
    from core.data.summary import preview_renderable
    from core.data.transforms import build_stats_transform

    data = build_data(cfg.data, cfg.run.seed)
    if getattr(data, split) is None:
        raise DataError(
            f"{config}: data source '{cfg.data.source}' has no {split} split. "
            f"Fix: use --split val, or set data.test_fraction (or data.shapes.test_size) above 0."
        )
    measured = None
    if data.task == "image" and not data.fitted.get("normalization"):
        train = data.train
        if hasattr(train, "indices"):
            measured = channel_stats(
                train.base, train.indices, build_stats_transform(cfg.data), seed=cfg.run.seed, max_samples=500
            )
        else:  # your own dataset: its items as they come, after your transforms
            measured = channel_stats(train, list(range(len(train))), lambda x: x.float(), seed=cfg.run.seed,
                                     max_samples=500)
    draw_seed = cfg.run.seed if seed is None else seed
    console = Console(emoji=False, highlight=False)
    console.print(preview_renderable(data, split, n, draw_seed, measured))
    if out is not None:
        if data.task != "image":
            raise DataError(
                f"--out {out}: {config}'s data is tabular, so there are no images to draw; the rows above are the "
                "samples. Fix: leave --out out."
            )
        from core.data.summary import samples_picture
        from core.pictures import save_png

        aug = "augmented, as in training" if split == "train" and data.info.get("augmented") else "deterministic"
        title = f"{config.name} · {split} samples ({aug}; seed {draw_seed})"
        path = save_png(samples_picture(data, split, n, draw_seed, title), out)
        console.print(f"wrote {path} ({min(n, len(getattr(data, split)))} samples)")
