"""Tabular classification from a CSV file: cleaning fitted on the training split only.

Order of the steps (each fitted on the training rows as they leave the step before):

1. read the file, check the target and feature columns, drop rows without a target;
2. drop duplicate rows (before splitting, so no row is both in training and validation);
3. stratified, seeded train/val/test split of the rows (file order kept within each split);
4. missing values: ``drop`` rows, fill with the training ``mean``/``median`` (categorical columns:
   the training mode), ``ffill`` within each split (then back-fill a leading gap), or ``constant``;
5. outliers (numeric columns): bounds from training z-scores, IQR or given ranges; ``drop`` removes
   training rows outside them and clips validation/test values (evaluation keeps every row),
   ``clip`` clips every split;
6. per-column transforms: ``log1p`` or Box-Cox (lambda given or fitted by maximum likelihood);
7. one-hot encoding of categorical columns with the training categories (unseen ones: all zeros);
8. scaling of the numeric columns: z-score or min-max with training statistics.

Every fitted number is kept in a JSON-serialisable ``state`` (``DataBundle.fitted["tabular"]``);
passing it back applies the same cleaning without refitting.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import BoxCoxSpec, CsvConfig, DataConfig
from core.data.bundle import DataBundle
from core.data.splits import class_counts, stratified_split
from core.errors import DataError

MISSING_CATEGORY = "<missing>"


# ---------------------------------------------------------------------------------------------
# Reading and checking
# ---------------------------------------------------------------------------------------------


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file; every failure is a :class:`DataError` naming the file."""
    if not path.exists():
        raise DataError(f"data.csv.path: {path} does not exist. Fix: check the path (relative to the current directory).")
    if path.is_dir():
        raise DataError(f"data.csv.path: {path} is a directory. Fix: point it at a .csv file.")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data.csv.path: {path} is empty. Fix: give a CSV with a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"data.csv.path: {path} is not a readable CSV file ({first}). Fix: save it as UTF-8 CSV.") from None
    if df.empty:
        raise DataError(f"data.csv.path: {path} has a header but no data rows. Fix: add rows.")
    return df


def select_columns(df: pd.DataFrame, cfg: CsvConfig, path: Path) -> tuple[list[str], list[str], list[str]]:
    """Check the columns named in the config; returns (features, numeric, categorical)."""
    columns = [str(c) for c in df.columns]
    shown = ", ".join(columns[:20]) + (" ..." if len(columns) > 20 else "")
    if cfg.target is None:
        raise DataError(f"data.csv.target is not set. Fix: name the label column of {path} (columns: {shown}).")
    if cfg.target not in df.columns:
        raise DataError(
            f"data.csv.target: column '{cfg.target}' is not in {path} (columns: {shown}). "
            f"Fix: set data.csv.target to the label column."
        )
    features = list(cfg.features) if cfg.features is not None else [c for c in columns if c != cfg.target]
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise DataError(
            f"data.csv.features: column(s) {', '.join(missing)} not in {path} (columns: {shown}). Fix: correct the names."
        )
    if cfg.target in features:
        raise DataError(f"data.csv.features: the target '{cfg.target}' is listed as a feature. Fix: remove it.")
    if not features:
        raise DataError(f"data.csv.features: {path} has no feature columns besides '{cfg.target}'.")
    for key, cols in (("categorical", cfg.categorical), ("transforms", list(cfg.transforms))):
        bad = [c for c in cols if c not in features]
        if bad:
            raise DataError(
                f"data.csv.{key}: column(s) {', '.join(bad)} are not feature columns of {path}. "
                f"Fix: use names from: {', '.join(features)}."
            )
    bad_ranges = [c for c in cfg.outliers.ranges if c not in features]
    if bad_ranges:
        raise DataError(f"data.csv.outliers.ranges: column(s) {', '.join(bad_ranges)} are not feature columns of {path}.")
    categorical = [c for c in features if c in cfg.categorical]
    numeric = [c for c in features if c not in cfg.categorical]
    for c in numeric:
        if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c]):
            values = df[c].dropna()
            example = next((v for v in values if not _is_number(v)), values.iloc[0] if len(values) else "")
            raise DataError(
                f"data.csv: column '{c}' of {path} is not numeric (e.g. {example!r}). "
                f"Fix: list it in data.csv.categorical to one-hot encode it, or leave it out of data.csv.features."
            )
    for c in numeric:
        infinite = np.flatnonzero(np.isinf(df[c].to_numpy(dtype="float64", na_value=np.nan)))
        if infinite.size:
            # pandas reads "inf" as a number; left in, it turns the scaling statistics and then the loss into NaN
            lines = ", ".join(str(int(i) + 2) for i in infinite[:8]) + (" ..." if infinite.size > 8 else "")
            raise DataError(
                f"data.csv: column '{c}' of {path} holds {infinite.size} infinite value(s) (lines {lines}, the header "
                f"being line 1). Fix: replace them by numbers, or empty them so data.csv.missing ({cfg.missing}) "
                f"handles them, or leave '{c}' out of data.csv.features."
            )
    bad_tf = [c for c in cfg.transforms if c in categorical]
    if bad_tf:
        raise DataError(f"data.csv.transforms: column(s) {', '.join(bad_tf)} are categorical; transforms need numbers.")
    return features, numeric, categorical


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The steps: fit_* on training rows returns JSON-able state; apply_* uses it on any split
# ---------------------------------------------------------------------------------------------


def fit_missing(train: pd.DataFrame, numeric: list[str], categorical: list[str], method: str, fill_value: float) -> dict:
    """Fill values per column for ``mean``/``median``/``constant`` (empty for ``drop``/``ffill``)."""
    fill: dict[str, Any] = {}
    if method in ("mean", "median"):
        for c in numeric:
            col = train[c].astype(float)
            v = col.mean() if method == "mean" else col.median()
            fill[c] = float(v) if pd.notna(v) else float(fill_value)
        for c in categorical:
            mode = train[c].dropna().astype(str).mode()
            fill[c] = str(mode.iloc[0]) if len(mode) else MISSING_CATEGORY
    elif method == "constant":
        fill = {c: float(fill_value) for c in numeric}
        fill.update({c: MISSING_CATEGORY for c in categorical})
    return fill


def apply_missing(df: pd.DataFrame, columns: list[str], method: str, fill: dict) -> pd.DataFrame:
    """Handle missing feature values of one split."""
    if method == "drop":
        return df.dropna(subset=columns)
    out = df.copy()
    if method == "ffill":
        out[columns] = out[columns].ffill().bfill()
        return out.dropna(subset=columns)  # a split whose column is entirely empty has nothing to fill from
    for c in columns:
        if c in fill:
            out[c] = out[c].fillna(fill[c])
    return out


def fit_outlier_bounds(train: pd.DataFrame, numeric: list[str], method: str, threshold: float, ranges: dict) -> dict:
    """Allowed ``[low, high]`` per numeric column."""
    bounds: dict[str, list[float]] = {}
    if method == "range":
        return {c: [float(lo), float(hi)] for c, (lo, hi) in ranges.items()}
    for c in numeric if method in ("zscore", "iqr") else []:
        col = train[c].astype(float)
        if method == "zscore":
            mean, std = float(col.mean()), float(col.std(ddof=0))
            bounds[c] = [mean - threshold * std, mean + threshold * std]
        else:
            q1, q3 = float(col.quantile(0.25)), float(col.quantile(0.75))
            iqr = q3 - q1
            bounds[c] = [q1 - threshold * iqr, q3 + threshold * iqr]
    return bounds


def apply_outliers(df: pd.DataFrame, bounds: dict, action: str, *, train: bool) -> tuple[pd.DataFrame, int]:
    """Drop (training rows) or clip values outside the bounds; returns the frame and the count affected."""
    if not bounds:
        return df, 0
    outside = pd.Series(False, index=df.index)
    for c, (lo, hi) in bounds.items():
        outside |= (df[c] < lo) | (df[c] > hi)
    count = int(outside.sum())
    if action == "drop" and train:
        return df[~outside], count
    out = df.copy()
    for c, (lo, hi) in bounds.items():
        out[c] = out[c].clip(lo, hi)
    return out, count


def fit_transforms(train: pd.DataFrame, transforms: dict, path: Path) -> dict:
    """Per-column ``{"kind": "log1p"}`` or ``{"kind": "boxcox", "lmbda": λ}`` (λ fitted when not given)."""
    state: dict[str, dict] = {}
    for c, spec in transforms.items():
        if spec == "log1p":
            state[c] = {"kind": "log1p"}
            continue
        given = spec.boxcox if isinstance(spec, BoxCoxSpec) else None
        x = train[c].astype(float).to_numpy()
        _check_positive(x, c, "training", path)
        lmbda = float(given) if given is not None else boxcox_lambda(x)
        state[c] = {"kind": "boxcox", "lmbda": lmbda}
    return state


def apply_transforms(df: pd.DataFrame, state: dict, split: str, path: Path) -> pd.DataFrame:
    """Apply the fitted per-column transforms to one split."""
    if not state:
        return df
    out = df.copy()
    for c, spec in state.items():
        x = out[c].astype(float).to_numpy()
        if spec["kind"] == "log1p":
            if len(x) and np.nanmin(x) <= -1:
                raise DataError(
                    f"data.csv.transforms.{c}: log1p needs values > -1, but column '{c}' of {path} has "
                    f"{np.nanmin(x):g} in the {split} split. Fix: clean or shift the column, or drop the transform."
                )
            out[c] = np.log1p(x)
        else:
            _check_positive(x, c, split, path)
            out[c] = boxcox(x, spec["lmbda"])
    return out


def _check_positive(x: np.ndarray, column: str, split: str, path: Path) -> None:
    if len(x) and np.nanmin(x) <= 0:
        raise DataError(
            f"data.csv.transforms.{column}: Box-Cox needs positive values, but column '{column}' of {path} has "
            f"{np.nanmin(x):g} in the {split} split. Fix: use log1p for values >= 0, or shift the column so "
            f"that every value is > 0."
        )


def boxcox(x: np.ndarray, lmbda: float) -> np.ndarray:
    """The Box-Cox transform ``(x**λ - 1) / λ`` (``log x`` at λ = 0)."""
    if abs(lmbda) < 1e-12:
        return np.log(x)
    return (np.power(x, lmbda) - 1.0) / lmbda


def boxcox_lambda(x: np.ndarray) -> float:
    """Maximum-likelihood λ (scipy's ``boxcox_normmax`` when available, else the same fit in numpy)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    try:
        from scipy import stats
    except ImportError:
        return boxcox_lambda_numpy(x)
    return float(stats.boxcox_normmax(x, method="mle"))


def boxcox_lambda_numpy(x: np.ndarray, low: float = -5.0, high: float = 5.0) -> float:
    """Maximise the Box-Cox log-likelihood over ``[low, high]`` by golden-section search."""
    logx = np.log(x)
    n = len(x)

    def llf(lmbda: float) -> float:
        y = logx if abs(lmbda) < 1e-12 else (np.exp(lmbda * logx) - 1.0) / lmbda
        var = float(np.var(y))
        return (lmbda - 1.0) * float(logx.sum()) - n / 2.0 * math.log(var) if var > 0 else -math.inf

    golden = (math.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = llf(c), llf(d)
    while b - a > 1e-7:
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = llf(c)
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = llf(d)
    return float((a + b) / 2)


def fit_categories(train: pd.DataFrame, categorical: list[str]) -> dict:
    """Sorted training categories per categorical column."""
    return {c: sorted(train[c].dropna().astype(str).unique().tolist()) for c in categorical}


def fit_scaling(train: pd.DataFrame, numeric: list[str], method: str) -> dict:
    """``{column: [center, scale]}`` so that ``(x - center) / scale`` is the scaled value."""
    out: dict[str, list[float]] = {}
    if method == "none":
        return out
    for c in numeric:
        col = train[c].astype(float)
        if method == "zscore":
            center, scale = float(col.mean()), float(col.std(ddof=0))
        else:
            center, scale = float(col.min()), float(col.max() - col.min())
        out[c] = [center, scale if scale > 0 and math.isfinite(scale) else 1.0]
    return out


def to_matrix(df: pd.DataFrame, numeric: list[str], categories: dict, scaling: dict) -> tuple[np.ndarray, list[str]]:
    """Scaled numeric columns then one-hot columns, as float32; and the output feature names."""
    parts: list[np.ndarray] = []
    names: list[str] = []
    for c in numeric:
        x = df[c].astype(float).to_numpy()
        if c in scaling:
            center, scale = scaling[c]
            x = (x - center) / scale
        parts.append(x[:, None])
        names.append(c)
    for c, cats in categories.items():
        values = df[c].astype(str).to_numpy()
        parts.append(np.stack([values == cat for cat in cats], axis=1).astype(float) if cats else np.zeros((len(df), 0)))
        names += [f"{c}={cat}" for cat in cats]
    matrix = np.concatenate(parts, axis=1) if parts else np.zeros((len(df), 0))
    return matrix.astype(np.float32), names


# ---------------------------------------------------------------------------------------------
# The whole pipeline
# ---------------------------------------------------------------------------------------------


class TabularCleaner:
    """Fits every cleaning statistic on training rows and applies them to any split.

    Args:
        cfg: The ``data.csv`` section.
        numeric: Numeric feature columns.
        categorical: Categorical feature columns.
        path: The CSV file (for messages).
        state: Fitted statistics from an earlier fit (skips fitting), or None.
    """

    def __init__(self, cfg: CsvConfig, numeric: list[str], categorical: list[str], path: Path, state: dict | None = None):
        self.cfg = cfg
        self.numeric = numeric
        self.categorical = categorical
        self.path = path
        self.state: dict = dict(state) if state else {}
        self.counts: dict[str, int] = {}

    @property
    def features(self) -> list[str]:
        """Input feature columns, numeric first."""
        return [*self.numeric, *self.categorical]

    def fit_transform_train(self, train: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Fit each step on the training rows (unless a state was given) and return them cleaned."""
        cfg, fitted = self.cfg, bool(self.state)
        if not fitted:
            self.state["fill"] = fit_missing(train, self.numeric, self.categorical, cfg.missing, cfg.fill_value)
        df = apply_missing(train, self.features, cfg.missing, self.state["fill"])
        self.counts["missing_dropped_train"] = len(train) - len(df)
        o = cfg.outliers
        if not fitted:
            self.state["bounds"] = fit_outlier_bounds(df, self.numeric, o.method, o.threshold, o.ranges)
        df, n_out = apply_outliers(df, self.state["bounds"], o.action, train=True)
        self.counts["outliers_train"] = n_out
        if not fitted:
            self.state["transforms"] = fit_transforms(df, cfg.transforms, self.path)
        df = apply_transforms(df, self.state["transforms"], "training", self.path)
        if not fitted:
            self.state["categories"] = fit_categories(df, self.categorical)
            self.state["scaling"] = fit_scaling(df, self.numeric, cfg.scaling)
        matrix, names = to_matrix(df, self.numeric, self.state["categories"], self.state["scaling"])
        self.state["output_features"] = names
        return df, matrix

    def transform(self, df: pd.DataFrame, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        """Clean a validation or test split with the fitted statistics."""
        cfg = self.cfg
        out = apply_missing(df, self.features, cfg.missing, self.state["fill"])
        self.counts[f"missing_dropped_{split}"] = len(df) - len(out)
        out, n_out = apply_outliers(out, self.state["bounds"], cfg.outliers.action, train=False)
        self.counts[f"outliers_{split}"] = n_out
        out = apply_transforms(out, self.state["transforms"], split, self.path)
        matrix, _ = to_matrix(out, self.numeric, self.state["categories"], self.state["scaling"])
        return out, matrix


def build_tabular(cfg: DataConfig, seed: int, *, fitted: dict | None = None) -> DataBundle:
    """The ``csv`` source: read, clean (fitted on training rows), split, tensors."""
    import torch

    from core.data.datasets import TensorPairs

    c = cfg.csv
    if not c.path:
        raise DataError("data.csv.path is not set, but data.source is 'csv'. Fix: set data.csv.path to the CSV file.")
    path = Path(c.path).expanduser()
    df = read_csv(path)
    df.columns = [str(col) for col in df.columns]
    _, numeric, categorical = select_columns(df, c, path)
    rows_read = len(df)
    df = df[df[c.target].notna()]
    no_target = rows_read - len(df)
    duplicates = 0
    if c.drop_duplicates:
        before = len(df)
        df = df.drop_duplicates()
        duplicates = before - len(df)

    stored = (fitted or {}).get("tabular")
    labels_raw = df[c.target]
    if stored:
        class_names = list(stored["class_names"])
    else:
        class_names = _class_names(labels_raw)
    index_of = {name: i for i, name in enumerate(class_names)}
    label_str = labels_raw.map(_label_str)
    unknown = sorted(set(label_str) - set(index_of))
    if unknown:
        raise DataError(
            f"data.csv.target: {path} has labels {unknown[:5]} that the stored class list {class_names} lacks. "
            f"Fix: use the data the checkpoint was trained on."
        )
    if len(class_names) < 2:
        raise DataError(f"data.csv.target: column '{c.target}' of {path} has only one class. Fix: choose the label column.")
    labels = label_str.map(index_of).to_numpy()

    fractions = [cfg.val_fraction] + ([cfg.test_fraction] if cfg.test_fraction > 0 else [])
    parts = stratified_split(labels.tolist(), fractions, seed)
    frames = {"train": df.iloc[parts[0]], "val": df.iloc[parts[1]]}
    if cfg.test_fraction > 0:
        frames["test"] = df.iloc[parts[2]]
    if frames["val"].empty:
        raise DataError(
            f"data.val_fraction: {cfg.val_fraction} of {len(df)} rows of {path} leaves no validation rows. "
            f"Fix: raise data.val_fraction or add rows."
        )

    cleaner = TabularCleaner(c, numeric, categorical, path, state=stored)
    splits: dict[str, TensorPairs] = {}
    for split, frame in frames.items():
        clean, matrix = cleaner.fit_transform_train(frame) if split == "train" else cleaner.transform(frame, split)
        if split == "train" and clean.empty:
            raise DataError(
                f"data.csv: no training rows of {path} are left after cleaning (missing: {c.missing}, outliers: "
                f"{c.outliers.method}). Fix: use missing: mean/median, or loosen the outlier settings."
            )
        y = clean[c.target].map(_label_str).map(index_of).to_numpy()
        ds = TensorPairs(torch.from_numpy(matrix), y.tolist())
        ds.rows = clean.index.tolist()  # original row numbers (0-based, header excluded)
        splits[split] = ds
    state = {**cleaner.state, "class_names": class_names}
    info = {
        "source": "csv",
        "path": str(path),
        "rows_read": rows_read,
        "rows_without_target": no_target,
        "duplicates_dropped": duplicates,
        "cleaning": dict(cleaner.counts),
        "features": list(state["output_features"]),
        "sizes": {k: len(v) for k, v in splits.items()},
        "class_counts": {k: class_counts(v.targets, len(class_names)) for k, v in splits.items()},
        "augmented": False,
    }
    return DataBundle(
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test"),
        class_names=class_names,
        input_shape=(len(state["output_features"]),),
        task="tabular",
        normalization=None,
        fitted={"tabular": state},
        info=info,
    )


def _label_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _class_names(labels: pd.Series) -> list[str]:
    values = labels.unique().tolist()
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        return [_label_str(v) for v in sorted(values)]
    return sorted({_label_str(v) for v in values})
