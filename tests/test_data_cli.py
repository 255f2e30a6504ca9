"""`ftui data preview` through the real CLI, and every bad data input of issue 3: exit 2, a message
that names the file and the key, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from tui.cli import app

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parent.parent / "sample_configs"


def write_config(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"data": data}))
    return path


def preview(path: Path, *args: str):
    return runner.invoke(app, ["data", "preview", str(path), *args])


def expect_user_error(result, *fragments: str) -> None:
    text = result.output
    assert result.exit_code == 2, text
    assert "Traceback" not in text
    assert isinstance(result.exception, SystemExit)  # a clean typer.Exit(2), not an escaped error
    flat = " ".join(text.split())
    for fragment in fragments:
        assert fragment in flat, (fragment, text)


def image_folder(root: Path, classes: list[str], n: int = 2) -> None:
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (40 * i, 90, 200)).save(root / c / f"{i}.png")


def test_preview_of_shapes_prints_statistics_and_samples(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"shapes": {"train_size": 40, "val_size": 10, "test_size": 0}, "augment": {"hflip": 0.5}})
    result = preview(cfg, "--n", "3", "--seed", "4")
    assert result.exit_code == 0, result.output
    for text in ("shapes", "train", "40", "class counts", "circle", "star", "pixel statistics", "augmented"):
        assert text in result.output, text
    # Not a terminal (CliRunner, a pipe): no colourless half blocks, the samples listed and how to see them.
    assert "▀" not in result.output
    listed = [line for line in result.output.splitlines() if line.strip().startswith("1. #")]
    assert len(listed) == 1 and "3. #" in listed[0], result.output
    assert "--out preview.png" in result.output and "FORCE_COLOR=1" in result.output
    val = preview(cfg, "--split", "val", "--n", "2")
    assert val.exit_code == 0 and "val samples (deterministic" in val.output


def test_piped_preview_and_its_png(tmp_path: Path) -> None:
    """Issue 20, item 6: piped output lists the samples; --out writes them as a PNG; FORCE_COLOR keeps the blocks."""
    import os
    import subprocess
    import sys

    cfg = write_config(tmp_path, {"shapes": {"train_size": 40, "val_size": 10, "test_size": 0, "image_size": 16}})
    out = tmp_path / "preview.png"
    result = preview(cfg, "--n", "5", "--seed", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (5 samples)" in " ".join(result.output.split())
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.mode == "RGB"
        # five 16-pixel samples enlarged to at least 96 pixels, side by side
        assert picture.width >= 5 * 96 and picture.height >= 96
    listed = " ".join(result.output.split())
    for k in range(1, 6):
        assert f"{k}. #" in listed
    # The same command through a real pipe with FORCE_COLOR=1, as the hint says: coloured half blocks again
    # (16 colours without a TERM; a terminal's TERM or COLORTERM=truecolor gives more).
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM", "COLORTERM")}
    for extra, code in (({}, "\x1b[9"), ({"COLORTERM": "truecolor"}, "\x1b[38;2;")):
        piped = subprocess.run([sys.executable, "-m", "tui.cli", "data", "preview", str(cfg), "--n", "2"],
                               capture_output=True, text=True, env={**env, "FORCE_COLOR": "1", **extra}, timeout=120)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.count("▀") == 2 * 16 * 8 and code in piped.stdout, piped.stdout[-500:]
    bad = preview(cfg, "--out", str(tmp_path / "preview.jpg"))
    expect_user_error(bad, "--out", "preview.jpg", "PNG", "--out preview.png")


def test_preview_of_the_csv_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(SAMPLES.parent)  # paths inside sample configs are relative to the repository
    result = preview(Path("sample_configs/csv_example.yaml"), "--n", "4")
    assert result.exit_code == 0, result.output
    for text in ("csv", "tabular", "rainy", "sunny", "features (training split", "sky=overcast", "wind_speed"):
        assert text in result.output, text


def test_preview_of_a_missing_split(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"shapes": {"train_size": 20, "val_size": 4, "test_size": 0}})
    expect_user_error(preview(cfg, "--split", "test"), str(cfg), "no test split")
    expect_user_error(preview(cfg, "--split", "nope"), "--split", "train, val, test")


def test_missing_root(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"source": "cifar10", "root": str(tmp_path / "datasets")})
    expect_user_error(preview(cfg), "data.root", str(tmp_path / "datasets"), "does not exist", "data.download: true")


def test_missing_dataset_files(tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    cfg = write_config(tmp_path, {"source": "mnist", "root": str(tmp_path / "datasets")})
    expect_user_error(preview(cfg), "data.root", str(tmp_path / "datasets" / "MNIST" / "raw"), "train-images-idx3-ubyte")


def test_imagefolder_without_images(tmp_path: Path) -> None:
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("no images here")
    cfg = write_config(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "imgs")})
    expect_user_error(preview(cfg), "data.root", "no images found in", str(tmp_path / "imgs"))


def test_imagefolder_with_one_class(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs", ["cat"])
    cfg = write_config(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "imgs")})
    expect_user_error(preview(cfg), "data.root", "only one class folder (cat)")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    image_folder(tmp_path / "imgs" / "train", ["cat", "dog"])
    image_folder(tmp_path / "imgs" / "val", ["cat", "dog"])
    broken = tmp_path / "imgs" / "val" / "dog" / "truncated.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 garbage")
    cfg = write_config(tmp_path, {"source": "imagefolder", "root": str(tmp_path / "imgs")})
    expect_user_error(preview(cfg), "cannot read image", str(broken))


def test_csv_without_the_target_column(tmp_path: Path) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    cfg = write_config(tmp_path, {"source": "csv", "csv": {"path": str(csv), "target": "label"}})
    expect_user_error(preview(cfg), "data.csv.target", "'label'", str(csv), "columns: a, b")


def test_csv_with_an_undeclared_text_column(tmp_path: Path) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("size,colour,y\n1,red,0\n2,blue,1\n3,red,0\n4,blue,1\n")
    cfg = write_config(tmp_path, {"source": "csv", "csv": {"path": str(csv), "target": "y"}})
    expect_user_error(preview(cfg), "column 'colour'", str(csv), "not numeric", "'red'", "data.csv.categorical")


def test_boxcox_on_non_positive_values(tmp_path: Path) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("v,y\n" + "".join(f"{i - 3},{i % 2}\n" for i in range(20)))
    cfg = write_config(tmp_path, {"source": "csv", "csv": {"path": str(csv), "target": "y", "transforms": {"v": "boxcox"}}})
    expect_user_error(preview(cfg), "data.csv.transforms.v", "Box-Cox needs positive values", str(csv))


def test_augmentation_parameter_out_of_range(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"augment": {"random_resized_crop": {"scale": [0.5, 1.2]}}})
    expect_user_error(preview(cfg), str(cfg), "data.augment.random_resized_crop.scale", "0 < low <= high <= 1")


@pytest.mark.parametrize("fraction", [0, 1])
def test_validation_fraction_of_zero_or_one(tmp_path: Path, fraction: int) -> None:
    cfg = write_config(tmp_path, {"source": "digits", "val_fraction": fraction})
    expect_user_error(preview(cfg), str(cfg), "data.val_fraction")


def test_unknown_shape_class(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, {"shapes": {"classes": ["circle", "squircle"]}})
    expect_user_error(preview(cfg), "data.shapes.classes", "squircle", "hexagon")
