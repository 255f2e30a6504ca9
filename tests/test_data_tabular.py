"""Tabular cleaning: every step on small hand-made data with the expected numbers worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.config import config_from_dict
from core.data import build_data
from core.data.tabular import (
    MISSING_CATEGORY,
    apply_missing,
    apply_outliers,
    apply_transforms,
    boxcox_lambda,
    boxcox_lambda_numpy,
    fit_categories,
    fit_missing,
    fit_outlier_bounds,
    fit_scaling,
    fit_transforms,
    to_matrix,
)
from core.errors import DataError

CSV = Path("data.csv")


def data_cfg(path: Path, **csv: object) -> object:
    extra = csv.pop("data", {})
    return config_from_dict({"data": {"source": "csv", "csv": {"path": str(path), **csv}, **extra}}).data


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def test_missing_mean_median_constant_and_categorical_mode() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, np.nan, 9.0], "c": ["a", "b", "b", None]})
    assert fit_missing(train, ["x"], ["c"], "mean", 0.0) == {"x": 4.0, "c": "b"}
    assert fit_missing(train, ["x"], ["c"], "median", 0.0) == {"x": 2.0, "c": "b"}
    assert fit_missing(train, ["x"], ["c"], "constant", -1.0) == {"x": -1.0, "c": MISSING_CATEGORY}
    filled = apply_missing(train, ["x", "c"], "mean", {"x": 4.0, "c": "b"})
    assert filled["x"].tolist() == [1.0, 2.0, 4.0, 9.0]
    assert filled["c"].tolist() == ["a", "b", "b", "b"]


def test_missing_drop_and_ffill() -> None:
    df = pd.DataFrame({"x": [np.nan, 2.0, np.nan, 4.0, np.nan], "y": [1.0, 1.0, 1.0, np.nan, 5.0]})
    assert apply_missing(df, ["x", "y"], "drop", {}).index.tolist() == [1]
    ff = apply_missing(df, ["x", "y"], "ffill", {})
    # Forward fill, then the leading gap is back-filled from the first value.
    assert ff["x"].tolist() == [2.0, 2.0, 2.0, 4.0, 4.0]
    assert ff["y"].tolist() == [1.0, 1.0, 1.0, 1.0, 5.0]


def test_outliers_zscore_bounds_drop_and_clip() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0]})
    bounds = fit_outlier_bounds(train, ["x"], "zscore", 1.5, {})
    # mean 22; population variance (441 + 400 + 361 + 324 + 6084) / 5 = 1522
    sigma = math.sqrt(1522.0)
    assert bounds["x"] == pytest.approx([22 - 1.5 * sigma, 22 + 1.5 * sigma])
    dropped, n = apply_outliers(train, bounds, "drop", train=True)
    assert n == 1 and dropped["x"].tolist() == [1.0, 2.0, 3.0, 4.0]
    clipped, n = apply_outliers(train, bounds, "clip", train=True)
    assert n == 1 and clipped["x"].iloc[-1] == pytest.approx(22 + 1.5 * sigma)
    # Evaluation splits keep every row: 'drop' clips there.
    val, _ = apply_outliers(pd.DataFrame({"x": [500.0]}), bounds, "drop", train=False)
    assert val["x"].tolist() == pytest.approx([22 + 1.5 * sigma])


def test_outliers_iqr_and_range() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0], "y": [0.0, 5.0, 10.0, 15.0, 20.0]})
    # q1 = 2, q3 = 4 (linear interpolation), IQR 2 -> [2 - 3, 4 + 3]
    assert fit_outlier_bounds(train, ["x"], "iqr", 1.5, {})["x"] == pytest.approx([-1.0, 7.0])
    bounds = fit_outlier_bounds(train, ["x", "y"], "range", 3.0, {"y": (2.0, 12.0)})
    assert bounds == {"y": [2.0, 12.0]}
    out, n = apply_outliers(train, bounds, "drop", train=True)
    assert n == 3 and out["y"].tolist() == [5.0, 10.0]


def test_scaling_zscore_and_minmax() -> None:
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    z = fit_scaling(train, ["x"], "zscore")
    assert z["x"] == pytest.approx([2.0, math.sqrt(2 / 3)])
    mm = fit_scaling(train, ["x"], "minmax")
    assert mm["x"] == [1.0, 2.0]
    matrix, names = to_matrix(pd.DataFrame({"x": [1.0, 2.0, 3.0, 5.0]}), ["x"], {}, mm)
    assert names == ["x"] and matrix[:, 0].tolist() == [0.0, 0.5, 1.0, 2.0]
    # A constant column scales by 1 instead of dividing by zero.
    assert fit_scaling(pd.DataFrame({"x": [3.0, 3.0]}), ["x"], "zscore")["x"] == [3.0, 1.0]


def test_log1p_and_boxcox_given_lambda() -> None:
    df = pd.DataFrame({"a": [0.0, math.e - 1.0], "b": [4.0, 1.0]})
    state = fit_transforms(df, {"a": "log1p", "b": config_from_dict(
        {"data": {"csv": {"transforms": {"b": {"boxcox": 0.5}}}}}).data.csv.transforms["b"]}, CSV)
    assert state == {"a": {"kind": "log1p"}, "b": {"kind": "boxcox", "lmbda": 0.5}}
    out = apply_transforms(df, state, "val", CSV)
    assert out["a"].tolist() == pytest.approx([0.0, 1.0])
    assert out["b"].tolist() == pytest.approx([2.0, 0.0])  # (sqrt(4) - 1) / 0.5, (1 - 1) / 0.5


def test_boxcox_fitted_lambda_matches_scipy_and_numpy_fallback() -> None:
    from scipy import stats

    x = np.random.default_rng(0).lognormal(mean=1.0, sigma=0.6, size=300)
    expected = stats.boxcox(x)[1]
    assert boxcox_lambda(x) == pytest.approx(expected, abs=1e-6)
    assert boxcox_lambda_numpy(x) == pytest.approx(expected, abs=1e-4)
    # Log-normal data is normalised by the log: lambda near 0.
    assert abs(expected) < 0.2


def test_boxcox_rejects_non_positive_values() -> None:
    with pytest.raises(DataError, match=r"data\.csv\.transforms\.v: Box-Cox needs positive values.*-2"):
        fit_transforms(pd.DataFrame({"v": [1.0, -2.0]}), {"v": "boxcox"}, CSV)
    with pytest.raises(DataError, match="log1p needs values > -1"):
        apply_transforms(pd.DataFrame({"v": [-1.0]}), {"v": {"kind": "log1p"}}, "val", CSV)


def test_one_hot_uses_training_categories() -> None:
    cats = fit_categories(pd.DataFrame({"c": ["red", "blue", "red"]}), ["c"])
    assert cats == {"c": ["blue", "red"]}
    matrix, names = to_matrix(pd.DataFrame({"c": ["red", "green", "blue"]}), [], cats, {})
    assert names == ["c=blue", "c=red"]
    assert matrix.tolist() == [[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]  # unseen 'green': all zeros


# ---------------------------------------------------------------------------------------------
# The csv source end to end
# ---------------------------------------------------------------------------------------------


def write_csv(tmp_path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    label = np.array(["low", "high"])[np.arange(n) % 2]
    df = pd.DataFrame(
        {
            "size": rng.normal(10, 2, n).round(3) + (label == "high") * 5,
            "weight": rng.lognormal(1, 0.5, n).round(4),
            "colour": np.array(["red", "green", "blue"])[np.arange(n) % 3],
            "label": label,
        }
    )
    df.loc[3, "size"] = np.nan
    df = pd.concat([df, df.iloc[[5, 6]]], ignore_index=True)  # two duplicate rows
    path = tmp_path / "table.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_source_fits_on_training_rows_only(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    cfg = data_cfg(
        path, target="label", categorical=["colour"], missing="median", transforms={"weight": "boxcox"},
        data={"val_fraction": 0.25, "test_fraction": 0.1},
    )
    bundle = build_data(cfg, seed=3)
    raw = pd.read_csv(path)
    assert bundle.task == "tabular" and bundle.class_names == ["high", "low"]
    assert bundle.info["duplicates_dropped"] == 2
    rows = {s: getattr(bundle, s).rows for s in ("train", "val", "test")}
    assert not set(rows["train"]) & set(rows["val"]) and not set(rows["train"]) & set(rows["test"])
    assert len(rows["train"]) + len(rows["val"]) + len(rows["test"]) == 60
    # round(0.25 * 30) = 8 and round(0.1 * 30) = 3 rows of each class
    assert bundle.info["class_counts"] == {"train": [19, 19], "val": [8, 8], "test": [3, 3]}

    state = bundle.fitted["tabular"]
    train_raw = raw.iloc[rows["train"]]
    assert state["fill"]["size"] == pytest.approx(train_raw["size"].median())
    from scipy import stats

    assert state["transforms"]["weight"]["lmbda"] == pytest.approx(stats.boxcox(train_raw["weight"].to_numpy())[1])
    size_filled = train_raw["size"].fillna(train_raw["size"].median())
    assert state["scaling"]["size"] == pytest.approx([size_filled.mean(), size_filled.std(ddof=0)])
    # Scaled training features have mean 0 and std 1; one-hot columns are not scaled.
    feats = bundle.train.features.double()
    assert bundle.info["features"] == ["size", "weight", "colour=blue", "colour=green", "colour=red"]
    assert feats[:, :2].mean(0).abs().max() < 1e-6
    assert feats[:, :2].std(0, unbiased=False).sub(1).abs().max() < 1e-5
    assert set(feats[:, 2:].unique().tolist()) == {0.0, 1.0}
    x, y = bundle.val[0]
    assert x.shape == (5,) and bundle.input_shape == (5,) and isinstance(y, int)
    # Through the epoch loader: (index, epoch) keys, shuffled full batches of the cleaned rows.
    from core.data import build_loader

    loader = build_loader(bundle.train, cfg.model_copy(update={"batch_size": 8}), split="train", seed=0)
    loader.set_epoch(1)
    got = [(xb, yb) for xb, yb in loader]
    assert len(got) == len(bundle.train) // 8 and got[0][0].shape == (8, 5) and got[0][0].dtype == torch.float32
    seen = torch.cat([xb for xb, _ in got])
    assert all(any(torch.equal(row, f) for f in bundle.train.features) for row in seen[:5])


def test_csv_fitted_statistics_are_reused(tmp_path: Path) -> None:
    path = write_csv(tmp_path)
    cfg = data_cfg(
        path, target="label", categorical=["colour"], missing="mean", transforms={"weight": "boxcox"},
        outliers={"method": "range", "ranges": {"size": [0, 30]}},
    )
    first = build_data(cfg, seed=0)
    # What goes into checkpoint["data"] survives torch.load(weights_only=True) and JSON unchanged.
    import json

    torch.save({"data": first.checkpoint_data()}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["data"]
    assert loaded == first.checkpoint_data() == json.loads(json.dumps(first.checkpoint_data()))
    assert loaded["task"] == "tabular" and loaded["input_shape"] == [5] and loaded["source"] == "csv"
    # Different rows (another seed) but the stored statistics: nothing is refitted.
    again = build_data(cfg, seed=7, fitted=first.checkpoint_data()["fitted"])
    assert again.fitted["tabular"]["scaling"] == first.fitted["tabular"]["scaling"]
    assert again.fitted["tabular"]["fill"] == first.fitted["tabular"]["fill"]
    refit = build_data(cfg, seed=7)
    assert refit.fitted["tabular"]["scaling"] != first.fitted["tabular"]["scaling"]
    center, scale = first.fitted["tabular"]["scaling"]["size"]
    raw = pd.read_csv(path).drop_duplicates()
    row = again.val.rows[0]
    assert float(again.val[0][0][0]) == pytest.approx((raw.loc[row, "size"] - center) / scale, abs=1e-5)


def test_csv_missing_drop_and_outlier_drop_counts(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "a,b,y\n" + "\n".join(f"{i},{i % 5},{i % 2}" for i in range(40)) + "\n,1,0\n1000,1,1\n1000,2,1\n"
    )
    cfg = data_cfg(path, target="y", missing="drop", outliers={"method": "range", "ranges": {"a": [0, 100]}, "action": "drop"},
                   data={"val_fraction": 0.2})
    bundle = build_data(cfg, seed=0)
    # Row 40 has no 'a' (dropped everywhere); rows 41 and 42 hold a = 1000, outside [0, 100].
    n_out = bundle.info["cleaning"]["outliers_train"]
    in_val = [r for r in (41, 42) if r in bundle.val.rows]
    assert n_out >= 1, "seed 0 puts at least one outlier row into training"
    assert len(in_val) == 2 - n_out
    assert 40 not in bundle.train.rows + bundle.val.rows
    assert not {41, 42} & set(bundle.train.rows)  # dropped from training
    assert len(bundle.train) + len(bundle.val) == 42 - n_out
    assert pd.read_csv(path).loc[bundle.train.rows, "a"].max() <= 39
    # A validation outlier is clipped to 100 before scaling.
    center, scale = bundle.fitted["tabular"]["scaling"]["a"]
    for r in in_val:
        i = bundle.val.rows.index(r)
        assert float(bundle.val[i][0][0]) == pytest.approx((100 - center) / scale, abs=1e-5)
