"""``build_data``: from a ``DataConfig`` to a :class:`DataBundle` of transformed, split datasets."""

from __future__ import annotations

from typing import Any

from core.config import DataConfig
from core.data.bundle import DataBundle
from core.data.datasets import SplitDataset
from core.data.sources import load_source
from core.data.splits import class_counts, stratified_split
from core.data.stats import channel_stats
from core.data.transforms import (
    build_image_transform,
    build_stats_transform,
    has_augmentation,
    resolve_normalization,
)
from core.errors import DataError
from core.usercode import is_code_name, is_object_name


def build_data(cfg: DataConfig, seed: int, *, fitted: dict | None = None, data: Any = None) -> DataBundle:
    """Load, split, fit statistics on the training split and attach transforms.

    Args:
        cfg: The ``data`` section.
        seed: Seed of the data (procedural samples, split shuffles, augmentation).
        fitted: ``checkpoint["data"]["fitted"]`` of an earlier run: reuse its statistics instead of fitting.
        data: splits given from Python (``ftui.run(data=...)``): a dict or object with train, val, ...,
            or a callable returning one; it replaces ``cfg.source`` (see ``core.data.user``).
    """
    if data is not None or is_code_name(cfg.source) or is_object_name(cfg.source):
        from core.data.user import build_user_data

        return build_user_data(cfg, seed, obj=data)
    if cfg.source == "csv":
        from core.data.tabular import build_tabular

        return build_tabular(cfg, seed, fitted=fitted)
    raw = load_source(cfg, seed)

    # Carve missing splits out of the training data (stratified, seeded).
    train_idx: list[int] | None = None
    val_base, val_idx = raw.val, None
    test_base, test_idx = raw.test, None
    if raw.val is None:
        fractions = [cfg.val_fraction]
        carve_test = raw.test is None and cfg.test_fraction > 0
        if carve_test:
            fractions.append(cfg.test_fraction)
        parts = stratified_split(raw.train.targets, fractions, seed)
        train_idx, val_idx = parts[0], parts[1]
        val_base = raw.train
        if carve_test:
            test_base, test_idx = raw.train, parts[2]
        if not val_idx:
            raise DataError(
                f"data.val_fraction: {cfg.val_fraction} of {len(raw.train)} samples leaves no validation "
                f"samples. Fix: raise data.val_fraction or add data."
            )
    elif raw.test is None and cfg.test_fraction > 0:
        train_idx, test_idx = stratified_split(raw.train.targets, [cfg.test_fraction], seed)
        test_base = raw.train
    train_indices = list(range(len(raw.train))) if train_idx is None else train_idx
    if not train_indices:
        raise DataError(f"data: the training split of '{cfg.source}' is empty. Fix: add training data.")

    stats_tf = build_stats_transform(cfg)
    probe = stats_tf(raw.train[train_indices[0]][0])
    input_shape = tuple(int(v) for v in probe.shape)
    channels, size = input_shape[0], (input_shape[1], input_shape[2])

    fitted_out: dict[str, Any] = {}
    auto_stats = None
    if cfg.normalize == "auto":
        if fitted and fitted.get("normalization"):
            auto_stats = dict(fitted["normalization"])
            if len(auto_stats["mean"]) != channels:
                raise DataError(
                    f"data.normalize: the stored statistics have {len(auto_stats['mean'])} channel(s) but the "
                    f"images have {channels}. Fix: use the data config the checkpoint was trained with."
                )
        else:
            auto_stats = channel_stats(raw.train, train_indices, stats_tf, seed=seed)
        fitted_out["normalization"] = auto_stats
    normalization = resolve_normalization(cfg, channels, auto_stats)

    random = has_augmentation(cfg.augment)
    train_tf = build_image_transform(cfg, train=True, size=size, normalization=normalization)
    eval_tf = build_image_transform(cfg, train=False, size=size, normalization=normalization)
    train = SplitDataset(raw.train, train_idx, train_tf, seed=seed, random=random, split="train")
    val = SplitDataset(val_base, val_idx, eval_tf, seed=seed, random=False, split="val")
    test = (
        SplitDataset(test_base, test_idx, eval_tf, seed=seed, random=False, split="test")
        if test_base is not None
        else None
    )
    info = {
        "source": cfg.source,
        **raw.info,
        "sizes": {name: len(ds) for name, ds in (("train", train), ("val", val), ("test", test)) if ds is not None},
        "class_counts": {
            name: class_counts(ds.targets, len(raw.class_names))
            for name, ds in (("train", train), ("val", val), ("test", test))
            if ds is not None
        },
        "augmented": random,
    }
    return DataBundle(
        train=train,
        val=val,
        test=test,
        class_names=list(raw.class_names),
        input_shape=input_shape,
        task="image",
        normalization=normalization,
        fitted=fitted_out,
        info=info,
    )

