"""Bad input from the user's own code: each case exits 2 through `ftui run`, with a message that names
the config key, the file and the fix, and no traceback.

Every case writes its own files (tmp_path), so each imports fresh code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from byo_support import DATA_PY, MODEL_PY, byo_raw, write_code
from tui.cli import app

runner = CliRunner()


def _run(folder: Path, *, model_py: str = MODEL_PY, data_py: str = DATA_PY, **sections) -> str:
    write_code(folder, model=model_py, data=data_py)
    config = folder / "bad.yaml"
    config.write_text(yaml.safe_dump(byo_raw(folder, "bad", **sections)))
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # the console wraps long lines


def test_a_module_that_fails_to_import_shows_the_error_and_its_line(tmp_path: Path) -> None:
    out = _run(tmp_path, model_py="import torch\n\nSIZE = 4\nWIDTH = SIZE * undefined_factor\n")
    assert "model.name: importing" in out and "models.py failed: NameError" in out
    assert "models.py:4" in out and "Fix: correct the code at that line" in out
    assert not (tmp_path / "runs" / "bad").exists()  # code that cannot build leaves no run directory behind


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    out = _run(tmp_path, model_py="from torch import nn\n\ndef build(:\n    pass\n")
    assert "SyntaxError" in out and "models.py:3" in out


def test_a_missing_dependency_says_to_install_it(tmp_path: Path) -> None:
    out = _run(tmp_path, model_py="import ftui_no_such_package_xyz\n")
    assert "ModuleNotFoundError" in out and "ftui_no_such_package_xyz" in out and "install the missing package" in out


def test_a_name_missing_in_the_module_suggests_the_closest(tmp_path: Path) -> None:
    out = _run(tmp_path, model={"name": "./models.py:TinyNte"})
    assert "model.name: 'TinyNte' is not defined in" in out and "models.py" in out
    assert "did you mean 'TinyNet'?" in out and "Fix: correct the name after the colon" in out


def test_a_module_path_that_does_not_exist(tmp_path: Path) -> None:
    out = _run(tmp_path, model={"name": "ftui_nosuch_pkg.models:Net"})
    assert "model.name: no module named 'ftui_nosuch_pkg'" in out and "name a file instead" in out


def test_a_missing_file_is_named_with_the_rule_for_relative_paths(tmp_path: Path) -> None:
    out = _run(tmp_path, model={"name": "./nets.py:TinyNet"})
    assert f"model.name: {tmp_path / 'nets.py'} does not exist" in out and "relative to the config file" in out


def test_a_callable_that_returns_no_module(tmp_path: Path) -> None:
    out = _run(tmp_path, model_py=MODEL_PY + "\ndef build(num_classes):\n    return {'net': TinyNet(num_classes, (3, 8, 8))}\n",
               model={"name": "./models.py:build", "kwargs": {}})
    assert "model.name: models.py:build returned a dict, not a torch.nn.Module" in out and "Fix: return the network" in out


def test_a_data_callable_that_returns_no_splits(tmp_path: Path) -> None:
    out = _run(tmp_path, data_py=DATA_PY + "\ndef listed(seed):\n    return [Blobs(8, seed, 0)]\n",
               data={"source": "./data.py:listed"})
    assert "data.source: data.py:listed returned a list" in out and "train, val, optional test, and class_names" in out


def test_unknown_kwargs_suggest_the_parameter(tmp_path: Path) -> None:
    out = _run(tmp_path, model={"kwargs": {"widht": 8}})
    assert "model.kwargs: models.py:TinyNet takes no argument 'widht' (did you mean 'width'?)" in out


def test_a_forward_that_fails_shows_the_inputs_it_got(tmp_path: Path) -> None:
    grey = MODEL_PY.replace("nn.Conv2d(input_shape[0], width", "nn.Conv2d(1, width")
    out = _run(tmp_path, model_py=grey)
    assert "model.name: models.py:TinyNet fails on a sample batch: RuntimeError" in out
    assert "It got tensor (2, 3, 8, 8) float32" in out and "models.py:" in out


def test_a_model_returning_a_tuple_is_asked_for_logits(tmp_path: Path) -> None:
    pair = MODEL_PY.replace("return self.classifier(self.body(self.features(x)))",
                            "h = self.body(self.features(x))\n        return self.classifier(h), h")
    out = _run(tmp_path, model_py=pair)
    assert "returned a tuple; ftui needs a tensor of logits shaped (batch, num_classes)" in out


def test_items_that_are_not_input_label_pairs(tmp_path: Path) -> None:
    triple = DATA_PY.replace("return x + 0.1 * torch.randn(3, self.side, self.side), self.targets[i]",
                             "return x, self.targets[i], i")
    out = _run(tmp_path, data_py=triple)
    assert "data.source: train[0] of data.py:make_data is a tuple of 3" in out and "(inputs, label) pairs" in out


@pytest.mark.parametrize("with_targets", [True, False])
def test_labels_out_of_range(tmp_path: Path, with_targets: bool) -> None:
    # with `targets` the whole split is checked at once; without, each item as it is read
    bad = DATA_PY.replace("self.targets = [i % 3 for i in range(n)]", "self.targets = [i % 4 for i in range(n)]")
    if not with_targets:
        bad = bad.replace("self.targets = ", "self.labels = ").replace("self.targets[i]", "self.labels[i]")
        bad = bad.replace("len(self.targets)", "len(self.labels)")
    out = _run(tmp_path, data_py=bad)
    assert "has label 3, outside [0, 3) for the 3 classes" in out and "Fix: return labels from 0 to 2" in out
    # all at once: the first bad index; item by item: the first bad item of the shuffled epoch
    assert re.search(r"data.source: train\[\d+\] of data.py:make_data has label 3", out)
    if with_targets:
        assert "train[3] of" in out


def test_a_head_that_does_not_exist_lists_the_candidates(tmp_path: Path) -> None:
    out = _run(tmp_path, model={"head": "fc"})
    assert "model.head: 'fc' is not a module of models.py:TinyNet" in out
    assert "last first: classifier, body.0" in out and "Fix: set model.head to one of them" in out
