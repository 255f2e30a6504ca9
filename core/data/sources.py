"""Image sources: the raw splits of ``shapes``, the torchvision sets, ``imagefolder`` and ``digits``.

A source returns :class:`RawSplits`: map-style datasets whose items are ``(image, label)`` (PIL
image or uint8 ``(C, H, W)`` tensor) and which have ``targets``. Splits the source does not have
(``val``, ``test``) are None and carved out of ``train`` by :func:`core.data.build.build_data`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.config import DataConfig
from core.data.shapes import ShapesDataset
from core.errors import DataError

# More image headers than this are not all opened at build time (the loader still names a bad file).
MAX_VERIFIED_IMAGES = 50_000


@dataclass
class RawSplits:
    """A source's own splits before transforms."""

    train: Any
    val: Any | None
    test: Any | None
    class_names: list[str]
    info: dict = field(default_factory=dict)


class ImageArray:
    """Images held as one uint8 tensor ``(N, C, H, W)`` with integer labels."""

    def __init__(self, images: torch.Tensor, targets: list[int]):
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], self.targets[index]


def load_source(cfg: DataConfig, seed: int) -> RawSplits:
    """Dispatch on ``cfg.source`` (every image source)."""
    if cfg.source == "shapes":
        return _shapes(cfg, seed)
    if cfg.source in TORCHVISION_SETS:
        return _torchvision(cfg)
    if cfg.source == "imagefolder":
        return _imagefolder(cfg)
    if cfg.source == "digits":
        return _digits()
    raise DataError(f"data.source: '{cfg.source}' is not an image source.")


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


def _shapes(cfg: DataConfig, seed: int) -> RawSplits:
    s = cfg.shapes  # class names are checked by the config schema
    train = ShapesDataset(s.classes, s.train_size, s.image_size, s.difficulty, seed, "train")
    val = ShapesDataset(s.classes, s.val_size, s.image_size, s.difficulty, seed, "val")
    test = ShapesDataset(s.classes, s.test_size, s.image_size, s.difficulty, seed, "test") if s.test_size > 0 else None
    return RawSplits(train, val, test, list(s.classes), {"difficulty": s.difficulty})


# ---------------------------------------------------------------------------------------------
# torchvision sets
# ---------------------------------------------------------------------------------------------

# source -> (torchvision class, folder under root, files looked for, where to get them)
TORCHVISION_SETS: dict[str, tuple[str, str, list[str], str]] = {
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract it into root)",
    ),
    "cifar100": (
        "CIFAR100",
        "cifar-100-python",
        ["train", "test", "meta"],
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract it into root)",
    ),
    "mnist": (
        "MNIST",
        "MNIST/raw",
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        "https://ossci-datasets.s3.amazonaws.com/mnist/ (gunzip the four .gz files into root/MNIST/raw)",
    ),
    "fashion_mnist": (
        "FashionMNIST",
        "FashionMNIST/raw",
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ (gunzip the four .gz files into "
        "root/FashionMNIST/raw)",
    ),
}


def require_root(cfg: DataConfig, *, create: bool = False) -> Path:
    """``data.root`` as a path that exists (created when downloading is allowed)."""
    if not cfg.root:
        raise DataError(
            f"data.root is not set, but data.source '{cfg.source}' reads its files from a directory. "
            f"Fix: set data.root to the dataset directory."
        )
    root = Path(cfg.root).expanduser()
    if not root.exists():
        if create:
            root.mkdir(parents=True, exist_ok=True)
            return root
        hint = " or set data.download: true to fetch it" if cfg.source in TORCHVISION_SETS else ""
        raise DataError(f"data.root: directory {root} does not exist. Fix: check the path{hint}.")
    if not root.is_dir():
        raise DataError(f"data.root: {root} is a file, not a directory. Fix: point data.root at the dataset folder.")
    return root


def _torchvision(cfg: DataConfig) -> RawSplits:
    import torchvision.datasets as tvd

    cls_name, folder, files, where = TORCHVISION_SETS[cfg.source]
    root = require_root(cfg, create=cfg.download)
    cls = getattr(tvd, cls_name)
    try:
        train = cls(str(root), train=True, download=cfg.download)
        test = cls(str(root), train=False, download=cfg.download)
    except (RuntimeError, FileNotFoundError):
        present = sorted(p.name for p in (root / folder).iterdir()) if (root / folder).is_dir() else []
        found = f" (found there: {', '.join(present[:8])})" if present else " (the folder is missing)"
        fix = (
            f"set data.download: true to fetch them into {root} (needs internet), or get them from {where}"
            if not cfg.download
            else f"the download did not produce them; get them from {where}"
        )
        raise DataError(
            f"data.root: {cfg.source} files not found or incomplete in {root / folder}{found}; looked for "
            f"{', '.join(files)}. Fix: {fix}."
        ) from None
    except OSError as exc:  # a download without network, a permission problem
        raise DataError(
            f"data.root: could not get {cfg.source} into {root}: {exc}. Fix: download {where} by hand."
        ) from None
    for ds in (train, test):
        ds.targets = _as_list(ds.targets)
    return RawSplits(train, None, test, [str(c) for c in train.classes], {"root": str(root)})


def _as_list(targets: Any) -> list[int]:
    return targets.tolist() if hasattr(targets, "tolist") else [int(t) for t in targets]


# ---------------------------------------------------------------------------------------------
# imagefolder
# ---------------------------------------------------------------------------------------------


#: Formats and PIL modes torchvision.io decodes (libjpeg-turbo, libpng, libwebp) to the same pixels as
#: PIL, in about half the time of PIL's decode and conversion to a tensor; others go through PIL.
FAST_DECODE = {"JPEG": ("RGB", "L"), "PNG": ("RGB", "L"), "WEBP": ("RGB",)}


def _fast_decoder() -> Any:
    """torchvision.io's ``decode_image``, or None where torchvision no longer has it.

    torchvision 0.29 deprecates its image decoders in favour of TorchCodec's; until ftui moves to
    TorchCodec (which needs its own wheel), PIL takes over where torchvision's are gone.
    """
    try:
        from torchvision.io import decode_image
    except ImportError:
        return None
    return decode_image


def load_image_file(path: str) -> Any:
    """Open an image as RGB: a uint8 ``(3, H, W)`` tensor decoded by torchvision.io for the usual JPEG,
    PNG and WebP files, else a PIL image; an unreadable file is a :class:`DataError` naming it.

    PIL reads the header first either way: it names a file that is not an image and refuses a
    decompression bomb before anything is decoded.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as img:
            decode = _fast_decoder() if img.mode in FAST_DECODE.get(img.format or "", ()) else None
            if decode is None:
                return img.convert("RGB")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # said once in the docstring above
            return decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB")
    except (UnidentifiedImageError, OSError, ValueError, RuntimeError, Image.DecompressionBombError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: str, exc: Exception) -> DataError:
    """The error for an image that cannot be read (or must not be: a decompression bomb)."""
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return DataError(
            f"data.root: image {path} is too large to decode safely ({exc}). Fix: shrink it (ftui resizes "
            f"every image to data.image_size anyway) or delete it."
        )
    return DataError(f"data.root: cannot read image {path} ({exc}). Fix: delete or replace the file.")


def _imagefolder(cfg: DataConfig) -> RawSplits:
    root = require_root(cfg)
    if (root / "train").is_dir():
        train = _folder(root / "train")
        val = _folder(root / "val") if (root / "val").is_dir() else None
        test = _folder(root / "test") if (root / "test").is_dir() else None
        for name, ds in (("val", val), ("test", test)):
            if ds is not None and ds.classes != train.classes:
                raise DataError(
                    f"data.root: the class folders of {root / name} ({', '.join(ds.classes)}) differ from "
                    f"those of {root / 'train'} ({', '.join(train.classes)}). Fix: use the same class "
                    f"subfolders in every split."
                )
        layout = "train/val folders"
    else:
        train, val, test = _folder(root), None, None
        layout = "one folder"
    if len(train.classes) < 2:
        raise DataError(
            f"data.root: {train.root} has only one class folder ({train.classes[0]}); classification needs at "
            f"least two. Fix: add one subfolder per class with its images."
        )
    sizes: set[tuple[int, int]] = set()
    example: dict[tuple[int, int], str] = {}
    for ds in (train, val, test):
        if ds is not None:
            _verify_images(ds, sizes, example)
    if len(sizes) > 1 and cfg.image_size is None:
        shown = "; ".join(f"{w}x{h} ({example[(w, h)]})" for w, h in sorted(sizes)[:3])
        raise DataError(
            f"data.image_size: the images in {root} have different sizes ({shown}), so they cannot be batched. "
            f"Fix: set data.image_size (e.g. 224) to resize and centre-crop them."
        )
    return RawSplits(train, val, test, list(train.classes), {"root": str(root), "layout": layout})


def _folder(path: Path) -> Any:
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(path), loader=load_image_file)
    except FileNotFoundError as exc:
        raise DataError(
            f"data.root: no images found in {path} ({exc}). Fix: put the images in one subfolder per class, "
            f"e.g. {path}/cat/1.jpg and {path}/dog/2.jpg (or train/ and val/ folders laid out that way)."
        ) from None


def _verify_images(ds: Any, sizes: set[tuple[int, int]], example: dict[tuple[int, int], str]) -> None:
    from PIL import Image, UnidentifiedImageError

    for path, _ in ds.samples[:MAX_VERIFIED_IMAGES]:
        try:
            with Image.open(path) as img:  # reads the header only
                size = img.size
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise _unreadable(path, exc) from None
        if size not in sizes:
            sizes.add(size)
            example[size] = path


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------


def _digits() -> RawSplits:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "data.source: 'digits' needs scikit-learn, which is not installed. "
            "Fix: pip install 'ftui[sklearn]' (or pip install scikit-learn)."
        ) from None
    bunch = load_digits()
    # 0..16 ink levels -> 0..255 grey pixels, one channel.
    images = torch.from_numpy((bunch.images * (255.0 / 16.0)).round().clip(0, 255).astype("uint8")).unsqueeze(1)
    targets = [int(t) for t in bunch.target]
    return RawSplits(ImageArray(images, targets), None, None, [str(i) for i in range(10)], {})
