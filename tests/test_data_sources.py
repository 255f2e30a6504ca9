"""Every source: torchvision sets read from tiny files in their real on-disk formats, imagefolder,
digits and shapes."""

from __future__ import annotations

import math
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import config_from_dict
from core.data import build_data
from core.data.shapes import SHAPE_NAMES, ShapesDataset, shape_coverage
from core.errors import DataError


def cfg(**data: object):
    return config_from_dict({"data": data}).data


# ---------------------------------------------------------------------------------------------
# Writers of the real formats
# ---------------------------------------------------------------------------------------------


def write_cifar(root: Path, *, hundred: bool) -> np.ndarray:
    """CIFAR python batches: pickled dicts with uint8 rows of 3072 (R plane, G plane, B plane)."""
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = "fine_labels" if hundred else "labels"
    num = 100 if hundred else 10
    n = 2 * num if hundred else 20  # CIFAR-100: two images per class so that each class can be split
    first = None
    names = ["train", "test"] if hundred else [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    for name in names:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [i % num for i in range(n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels, "batch_label": name}, f)
        if first is None:
            first = data
    meta_name, meta_key = ("meta", "fine_label_names") if hundred else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as f:
        pickle.dump({meta_key: [f"class{i}" for i in range(num)]}, f)
    assert first is not None
    return first


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, then the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, n_train: int = 30, n_test: int = 10) -> np.ndarray:
    rng = np.random.default_rng(1)
    raw = root / folder / "raw"
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    write_idx(raw / "train-images-idx3-ubyte", train)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)
    return train


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """CIFAR's loader checks MD5 sums of the official files; our tiny files only need to exist."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


# ---------------------------------------------------------------------------------------------
# torchvision sets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_from_pickled_batches(tmp_path: Path, no_md5: None, hundred: bool) -> None:
    first = write_cifar(tmp_path, hundred=hundred)
    source = "cifar100" if hundred else "cifar10"
    bundle = build_data(cfg(source=source, root=str(tmp_path), normalize="none", val_fraction=0.2), seed=0)
    n_train, n_test = (200, 200) if hundred else (100, 20)
    assert len(bundle.train) + len(bundle.val) == n_train and len(bundle.test) == n_test
    assert bundle.num_classes == (100 if hundred else 10) and bundle.class_names[3] == "class3"
    assert bundle.input_shape == (3, 32, 32)
    # Pixel values survive the round trip: row 0 of the first batch is R, G, B planes of 32x32.
    base_index = 0
    x = bundle.train.base[base_index][0]
    expected = first[0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(np.asarray(x), expected)
    if 0 in bundle.train.indices:
        i = bundle.train.indices.index(0)
        assert torch.allclose(bundle.train[i][0], torch.from_numpy(first[0].reshape(3, 32, 32)).float() / 255)


@pytest.mark.parametrize(("source", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(tmp_path: Path, source: str, folder: str) -> None:
    train = write_mnist(tmp_path, folder)
    bundle = build_data(cfg(source=source, root=str(tmp_path), val_fraction=0.2), seed=1)
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10
    # 3 images per class; round(0.2 * 3) = 1 of each goes to validation.
    assert len(bundle.train) == 20 and len(bundle.val) == 10 and len(bundle.test) == 10
    assert bundle.info["class_counts"]["train"] == [2] * 10
    stats = bundle.fitted["normalization"]
    pixels = train[bundle.train.indices].astype(np.float64) / 255
    assert stats["mean"][0] == pytest.approx(pixels.mean(), abs=1e-5)
    assert stats["std"][0] == pytest.approx(pixels.std(), abs=1e-5)
    x, y = bundle.val[0]
    j = bundle.val.indices[0]
    assert y == j % 10
    assert torch.allclose(x, (torch.from_numpy(train[j]).float()[None] / 255 - stats["mean"][0]) / stats["std"][0], atol=1e-5)


def test_missing_torchvision_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build_data(cfg(source="cifar10", root=str(tmp_path)), seed=0)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_1" in msg
    assert "data.download: true" in msg and "cifar-10-python.tar.gz" in msg
    with pytest.raises(DataError, match=r"data\.root: directory .*nope does not exist"):
        build_data(cfg(source="mnist", root=str(tmp_path / "nope")), seed=0)
    with pytest.raises(DataError, match=r"data\.root is not set"):
        build_data(cfg(source="fashion_mnist"), seed=0)


# ---------------------------------------------------------------------------------------------
# imagefolder
# ---------------------------------------------------------------------------------------------


def write_folder(root: Path, classes: dict[str, tuple[int, int, int]], n: int, size: int = 12) -> None:
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size), colour).save(root / name / f"{i}.png")


def test_imagefolder_train_val_layout_and_normalize_auto(tmp_path: Path) -> None:
    classes = {"blue": (0, 0, 255), "red": (255, 0, 0)}
    write_folder(tmp_path / "train", classes, 4)
    write_folder(tmp_path / "val", classes, 2)
    bundle = build_data(cfg(source="imagefolder", root=str(tmp_path), image_size=8), seed=0)
    assert bundle.class_names == ["blue", "red"] and bundle.input_shape == (3, 8, 8)
    assert (len(bundle.train), len(bundle.val), bundle.test) == (8, 4, None)
    # Half the pixels are pure blue, half pure red: mean (0.5, 0, 0.5), std (0.5, 0 -> floor, 0.5).
    stats = bundle.fitted["normalization"]
    assert stats["mean"] == pytest.approx([0.5, 0.0, 0.5]) and stats["std"][0] == pytest.approx(0.5)
    assert stats["std"][1] == pytest.approx(1e-6)
    assert bundle.normalization == {"mean": stats["mean"], "std": stats["std"]}
    x, y = bundle.val[0]
    assert bundle.class_names[y] == "blue"
    assert torch.allclose(x[0], torch.full((8, 8), -1.0)) and torch.allclose(x[2], torch.full((8, 8), 1.0))
    # A checkpoint's statistics are reused rather than refitted.
    stored = {"normalization": {"mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 4.0]}}
    again = build_data(cfg(source="imagefolder", root=str(tmp_path), image_size=8), seed=0, fitted=stored)
    assert again.normalization == {"mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 4.0]}
    assert torch.allclose(again.val[0][0][2], torch.full((8, 8), (1.0 - 0.3) / 4.0))


def test_imagefolder_single_folder_stratified_split(tmp_path: Path) -> None:
    write_folder(tmp_path, {"a": (10, 10, 10), "b": (200, 200, 200), "c": (90, 10, 10)}, 10)
    bundle = build_data(cfg(source="imagefolder", root=str(tmp_path), val_fraction=0.2, test_fraction=0.1), seed=4)
    assert bundle.info["class_counts"] == {"train": [7, 7, 7], "val": [2, 2, 2], "test": [1, 1, 1]}
    all_idx = bundle.train.indices + bundle.val.indices + bundle.test.indices
    assert sorted(all_idx) == list(range(30))
    same = build_data(cfg(source="imagefolder", root=str(tmp_path), val_fraction=0.2, test_fraction=0.1), seed=4)
    assert same.val.indices == bundle.val.indices


def test_imagefolder_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found in"):
        build_data(cfg(source="imagefolder", root=str(empty)), seed=0)
    one = tmp_path / "one"
    write_folder(one, {"only": (1, 2, 3)}, 3)
    with pytest.raises(DataError, match="only one class folder"):
        build_data(cfg(source="imagefolder", root=str(one)), seed=0)
    bad = tmp_path / "bad"
    write_folder(bad, {"x": (1, 2, 3), "y": (3, 2, 1)}, 3)
    (bad / "y" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png"):
        build_data(cfg(source="imagefolder", root=str(bad)), seed=0)
    mixed = tmp_path / "mixed"
    write_folder(mixed, {"x": (1, 2, 3)}, 2, size=12)
    write_folder(mixed, {"y": (3, 2, 1)}, 2, size=20)
    with pytest.raises(DataError, match=r"data\.image_size: .*different sizes"):
        build_data(cfg(source="imagefolder", root=str(mixed)), seed=0)


# ---------------------------------------------------------------------------------------------
# digits and shapes
# ---------------------------------------------------------------------------------------------


def test_digits_from_scikit_learn() -> None:
    from sklearn.datasets import load_digits

    bundle = build_data(cfg(source="digits", normalize="none", val_fraction=0.2), seed=0)
    assert bundle.input_shape == (1, 8, 8) and bundle.class_names == [str(i) for i in range(10)]
    assert len(bundle.train) + len(bundle.val) == 1797
    j = bundle.val.indices[0]
    digits = load_digits()
    x, y = bundle.val[0]
    assert y == int(digits.target[j])
    assert torch.allclose(x[0], torch.from_numpy(np.round(digits.images[j] * 255 / 16) / 255).float(), atol=1e-6)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` raise ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'ftui\[sklearn\]'"):
        build_data(cfg(source="digits"), seed=0)


def test_shapes_are_deterministic_per_seed_split_and_index() -> None:
    a = ShapesDataset(list(SHAPE_NAMES), 24, 32, 0.5, seed=0, split="train")
    b = ShapesDataset(list(SHAPE_NAMES), 1_000_000, 32, 0.5, seed=0, split="train")  # costs no memory
    assert all(torch.equal(a[i][0], b[i][0]) for i in (0, 5, 23))
    assert not torch.equal(a[0][0], ShapesDataset(list(SHAPE_NAMES), 24, 32, 0.5, seed=1, split="train")[0][0])
    assert not torch.equal(a[0][0], ShapesDataset(list(SHAPE_NAMES), 24, 32, 0.5, seed=0, split="val")[0][0])
    x, y = a[13]
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32) and y == 13 % 12
    assert b.targets[:13] == list(range(12)) + [0]


@pytest.mark.parametrize(
    ("name", "area"),
    [
        ("circle", math.pi * 0.9**2),
        ("ring", math.pi * (0.96**2 - 0.48**2)),  # |r - 0.72| <= 0.24
        ("square", 1.56**2),
        ("diamond", 2 * 0.62 * 1.0),  # half the product of the diagonals 1.24 and 2
        ("hexagon", 3 * math.sqrt(3) / 2 * 0.95**2),
        ("cross", 2 * 0.68 * 1.9 - 0.68**2),
    ],
)
def test_shape_coverage_has_the_shapes_area(name: str, area: float) -> None:
    # Radius 20 px: template units scale by 20, so the covered pixels sum to area * 20^2.
    coverage = shape_coverage(name, 64, 20.0, 32.0, 32.0, theta=0.3)
    assert coverage.min() == 0.0 and coverage.max() == 1.0
    assert float(coverage.sum()) == pytest.approx(area * 400, rel=0.02)
    # Anti-aliased: the edge has partial coverage.
    assert ((coverage > 0.05) & (coverage < 0.95)).sum() > 10


def test_shapes_difficulty_and_class_lists() -> None:
    easy = build_data(cfg(shapes={"classes": ["pentagon", "heart"], "difficulty": 0.0, "train_size": 8,
                                  "val_size": 4, "test_size": 0}, normalize="none"), seed=0)
    hard = build_data(cfg(shapes={"classes": ["pentagon", "heart"], "difficulty": 1.0, "train_size": 8,
                                  "val_size": 4, "test_size": 0}, normalize="none"), seed=0)
    assert easy.class_names == ["pentagon", "heart"] and easy.test is None

    # Noise: neighbouring pixels of the hard set differ more than those of the easy set.
    def roughness(bundle) -> float:
        xs = torch.stack([bundle.train[i][0] for i in range(8)])
        return float((xs[..., 1:] - xs[..., :-1]).abs().mean())

    assert roughness(hard) > 2 * roughness(easy)


@pytest.mark.parametrize("workers", [0, 2])
def test_image_that_breaks_while_loading_is_named_without_a_traceback(tmp_path: Path, workers: int) -> None:
    from core.data import build_loader

    write_folder(tmp_path, {"x": (1, 2, 3), "y": (3, 2, 1)}, 4)
    broken = tmp_path / "y" / "3.png"
    noise = np.random.default_rng(0).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    Image.fromarray(noise).save(broken)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header survives, so only decoding fails
    data_cfg = cfg(source="imagefolder", root=str(tmp_path), normalize="none", val_fraction=0.25,
                   batch_size=2, num_workers=workers)
    bundle = build_data(data_cfg, seed=0)
    loaders = [build_loader(getattr(bundle, s), data_cfg, split=s, seed=0) for s in ("train", "val")]
    try:
        with pytest.raises(DataError) as err:
            for loader in loaders:
                for _ in loader:
                    pass
    finally:
        for loader in loaders:
            loader.close()
    assert str(broken) in str(err.value) and "cannot read image" in str(err.value)
    assert "Traceback" not in str(err.value)


def test_image_files_decode_to_pils_pixels_fast_path_or_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JPEG, PNG and WebP in RGB or grey go through torchvision.io (libjpeg-turbo: about twice PIL's speed
    with its conversion to a tensor); CMYK and palette images, and a torchvision without decoders, PIL."""
    import numpy as np
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    from core.data import sources

    rng = np.random.default_rng(0)
    rgb = np.clip(np.cumsum(rng.normal(0, 9, (40, 48, 3)), axis=1) + 128, 0, 255).astype("uint8")
    files = {"photo.jpg": Image.fromarray(rgb), "grey.jpg": Image.fromarray(rgb[..., 0]),
             "lossless.png": Image.fromarray(rgb), "print.jpg": Image.fromarray(rgb).convert("CMYK"),
             "palette.png": Image.fromarray(rgb).convert("P"), "web.webp": Image.fromarray(rgb)}
    for name, img in files.items():
        img.save(tmp_path / name, quality=90) if name.endswith(".jpg") else img.save(tmp_path / name)
    expected = {}
    for name in files:
        path = str(tmp_path / name)
        with Image.open(path) as ref:
            expected[name] = pil_to_tensor(ref.convert("RGB"))
        got = sources.load_image_file(path)
        fast = name in ("photo.jpg", "grey.jpg", "lossless.png", "web.webp")
        assert isinstance(got, torch.Tensor) == fast, name
        got = got if fast else pil_to_tensor(got)
        assert got.dtype == torch.uint8 and torch.equal(got, expected[name]), name
    monkeypatch.setattr(sources, "_fast_decoder", lambda: None)  # a torchvision whose decoders are gone
    fallback = sources.load_image_file(str(tmp_path / "photo.jpg"))
    assert isinstance(fallback, Image.Image) and torch.equal(pil_to_tensor(fallback), expected["photo.jpg"])
