"""Many runs from the shell: the run index (differing keys, filters, sorting), managing runs
(trash, restore, rename, tags, notes, archive) and `ftui runs`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import manage
from core.errors import RunError
from core.run_index import RunIndex, differing_keys, make_listing, parse_query
from core.runs import CONFIG_JSON, META_JSON, RUN_JSON, TRASH_DIR, read_json, read_meta
from runs_helpers import make_run, make_running
from tui.cli import app

runner = CliRunner()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    make_run(root, "base", lr=0.01, best=0.47, created=1.8e9)
    make_run(root, "fast", lr=0.1, best=0.52, created=1.8e9 + 10)
    make_run(root, "slow", lr=0.001, batch_size=32, best=0.31, created=1.8e9 + 20, status="failed", error="boom")
    return root


def test_index_lists_newest_first_and_finds_the_keys_that_differ(root: Path) -> None:
    index = RunIndex(root)
    entries = index.scan()
    assert [e.name for e in entries] == ["slow", "fast", "base"]
    assert differing_keys(entries) == ["data.batch_size", "optim.lr"]  # run.name differs but says nothing
    # a rescan reuses what did not change and sees what did
    manage.tag_run(root / "base", ["baseline"])
    again = {e.name: e for e in index.scan()}
    assert again["base"].meta.tags == ("baseline",) and again["fast"].config is entries[1].config


def test_filters_match_words_fields_tags_and_config_values(root: Path) -> None:
    manage.tag_run(root / "base", ["baseline", "lr:mid"])
    entries = RunIndex(root).scan()

    def names(query: str) -> list[str]:
        return sorted(e.name for e in make_listing(entries, query).entries)

    assert names("") == ["base", "fast", "slow"]
    assert names("fas") == ["fast"]  # a word: substring of the name
    assert names("failed") == ["slow"]  # ... or of the status
    assert names("tag=baseline") == ["base"] and names("tag!=baseline") == ["fast", "slow"]
    assert names("optim.lr=1e-3") == ["slow"]  # numbers compare as numbers: 1e-3 == 0.001
    assert names("optim.lr>=0.01 status=finished") == ["base", "fast"]
    assert names("optim.lr<0.05 data.batch_size=64") == ["base"]
    assert names("best>0.5") == ["fast"]
    assert names("name=f*") == ["fast"]
    assert names("optim.lr=") == ["base", "fast", "slow"]  # half typed: no filter yet
    assert names("no.such.key=1") == []
    assert parse_query("tag=baseline optim.lr<1").keys() == ["tag", "optim.lr"]


def test_sorting_by_columns_and_config_keys_puts_missing_values_last(root: Path) -> None:
    make_run(root, "young", lr=0.05, best=None, created=1.8e9 + 30, status="running")
    entries = RunIndex(root).scan()
    by = lambda col, rev=False: [e.name for e in make_listing(entries, sort=col, reverse=rev).entries]  # noqa: E731
    assert by("best", True) == ["fast", "base", "slow", "young"]
    assert by("best") == ["slow", "base", "fast", "young"]  # no best: last either way
    assert by("optim.lr") == ["slow", "base", "young", "fast"]
    assert by("name") == ["base", "fast", "slow", "young"]
    assert by("status")[0] == "young"  # what needs attention first: the runs training


def test_archived_runs_are_hidden_unless_asked_for(root: Path) -> None:
    manage.archive_run(root / "slow")
    entries = RunIndex(root).scan()
    listing = make_listing(entries)
    assert [e.name for e in listing.entries] == ["fast", "base"] and listing.hidden_archived == 1
    assert [e.name for e in make_listing(entries, "archived=true").entries] == ["slow"]
    assert len(make_listing(entries, show_archived=True).entries) == 3


def test_trash_restore_rename_tag_and_note(root: Path) -> None:
    trashed = manage.trash_run(root / "fast", root)
    assert trashed == root / TRASH_DIR / "fast" and not (root / "fast").exists()
    assert [e.name for e in RunIndex(root).scan()] == ["slow", "base"]  # the trash is not listed
    assert manage.restore_run("fast", root) == root / "fast"
    renamed = manage.rename_run(root / "fast", "fast-lr0.1")
    assert renamed.is_dir() and read_json(renamed / RUN_JSON)["name"] == "fast-lr0.1"
    meta = manage.tag_run(renamed, ["a", "b"])
    meta = manage.tag_run(renamed, ["c"], remove=["a"])
    assert meta.tags == ("b", "c") and read_meta(renamed).tags == ("b", "c")
    manage.note_run(renamed, "  lr ten times higher ")
    assert json.loads((renamed / META_JSON).read_text())["notes"] == "lr ten times higher"
    with pytest.raises(RunError, match="not a valid tag"):
        manage.tag_run(renamed, ["has space"])
    with pytest.raises(RunError, match="not a valid run name"):
        manage.rename_run(renamed, "../escape")
    with pytest.raises(RunError, match="already exists"):
        manage.rename_run(renamed, "base")


def test_a_running_run_is_neither_deleted_nor_renamed_and_the_message_says_why(root: Path) -> None:
    make_running(root / "base")
    for action in (lambda: manage.trash_run(root / "base", root), lambda: manage.rename_run(root / "base", "x")):
        with pytest.raises(RunError) as caught:
            action()
        text = str(caught.value)
        assert "cannot" in text and "running" in text and "trainer keeps writing" in text and "ctl" in text
    assert (root / "base" / RUN_JSON).is_file()
    # tags and notes live in meta.json, which the trainer never rewrites: fine while it runs
    assert manage.tag_run(root / "base", ["live"]).tags == ("live",)


def test_ftui_runs_ls_filters_sorts_and_prints_json(root: Path) -> None:
    result = runner.invoke(app, ["runs", "ls", "--root", str(root), "--sort", "best", "--desc"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "best val/acc" in lines[0] and "optim.lr" in lines[0] and "batch_size" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["fast", "base", "slow"]
    assert "3 of 3 runs" in result.output
    result = runner.invoke(app, ["runs", "ls", "--root", str(root), "--filter", "optim.lr<0.05", "--json"])
    rows = json.loads(result.output)
    assert sorted(r["name"] for r in rows) == ["base", "slow"]
    assert {r["name"]: r["hparams"]["optim.lr"] for r in rows} == {"base": 0.01, "slow": 0.001}
    # `ftui --root X` is the runs root of every command
    assert len(json.loads(runner.invoke(app, ["--root", str(root), "runs", "ls", "--json"]).output)) == 3
    bad = runner.invoke(app, ["runs", "ls", "--root", str(root), "--sort", "bset"])
    assert bad.exit_code == 2 and "Did you mean 'best'" in bad.output and "Traceback" not in bad.output


def test_ftui_runs_rm_asks_refuses_running_runs_and_prints_a_working_undo(root: Path) -> None:
    result = runner.invoke(app, ["runs", "rm", "fast", "--root", str(root)], input="n\n")
    assert result.exit_code == 1 and (root / "fast").is_dir()
    make_running(root / "base")
    result = runner.invoke(app, ["runs", "rm", "fast", "base", "--root", str(root), "--yes"])
    assert result.exit_code == 2 and "cannot delete a running run" in result.output
    assert (root / "fast").is_dir()  # nothing deleted when one of them is running
    result = runner.invoke(app, ["runs", "rm", "fast", "--root", str(root)], input="y\n")
    assert result.exit_code == 0, result.output
    assert not (root / "fast").exists() and (root / TRASH_DIR / "fast" / RUN_JSON).is_file()
    undo = result.output.split("undo: ")[1].split(")")[0]
    assert undo.startswith("ftui runs restore fast")
    restored = runner.invoke(app, shlex.split(undo)[1:])  # exactly as printed, without the program name
    assert restored.exit_code == 0 and (root / "fast" / RUN_JSON).is_file()


def test_ftui_runs_mv_tag_note_archive(root: Path) -> None:
    assert runner.invoke(app, ["runs", "mv", "fast", "fast2", "--root", str(root)]).exit_code == 0
    result = runner.invoke(app, ["runs", "tag", "fast2", "good", "lr:high", "--root", str(root)])
    assert result.exit_code == 0 and "good lr:high" in result.output
    result = runner.invoke(app, ["runs", "tag", "fast2", "--remove", "good", "--root", str(root)])
    assert "tags lr:high" in result.output
    assert runner.invoke(app, ["runs", "note", "fast2", "ten times the lr", "--root", str(root)]).exit_code == 0
    assert runner.invoke(app, ["runs", "archive", "fast2", "--root", str(root)]).exit_code == 0
    listed = json.loads(runner.invoke(app, ["runs", "ls", "--root", str(root), "--json"]).output)
    assert "fast2" not in [r["name"] for r in listed]
    listed = json.loads(runner.invoke(app, ["runs", "ls", "--root", str(root), "--json", "--all"]).output)
    fast2 = next(r for r in listed if r["name"] == "fast2")
    assert fast2["archived"] and fast2["tags"] == ["lr:high"] and fast2["notes"] == "ten times the lr"
    missing = runner.invoke(app, ["runs", "mv", "nope", "x", "--root", str(root)])
    assert missing.exit_code == 2 and "no such run" in missing.output


def test_ftui_runs_ls_in_a_terminal_keeps_each_runs_facts_whole(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from tui.commands import runs_cmd

    # configs that differ in many long values (a fine-tune beside the run it started from)
    for name, classes, weights in (("base", ["circle", "square", "triangle", "cross", "ring", "star"], None),
                                   ("fast", ["diamond", "ellipse", "arrow", "heart"], "runs/base/checkpoints/best.pt")):
        config = json.loads((root / name / CONFIG_JSON).read_text())
        config["data"]["shapes"] = {"classes": classes, "difficulty": 0.5 + len(classes) / 100, "train_size": 6000}
        config["model"]["weights"] = weights
        (root / name / CONFIG_JSON).write_text(json.dumps(config))
    info = json.loads((root / "fast" / RUN_JSON).read_text())
    info["best"]["value"] = 0.9575
    (root / "fast" / RUN_JSON).write_text(json.dumps(info))
    for width in (80, 120):
        monkeypatch.setattr(runs_cmd, "_console", lambda: Console(width=width, force_terminal=True, color_system=None,
                                                                highlight=False, soft_wrap=False))
        out = runner.invoke(app, ["runs", "ls", "--root", str(root), "--sort", "best", "--desc"]).output
        lines = out.splitlines()
        assert all(len(line) <= width for line in lines), out
        assert lines[0].split()[:6] == ["name", "status", "epoch", "·", "step", "best"], out
        assert lines[1].split()[:6] == ["fast", "finished", "3/3", "·", "72", "0.9575"], out  # whole, at 80 too
        note = " ".join(out.split("3 of 3 runs")[1].split())
        assert note.startswith("; ") and "more columns in a wider terminal or with --json: " in note, out
        assert "data.shapes.classes" in note or "shapes.classes" in lines[0], out  # shown, or said to be left out
    # piped: every column, every cell whole
    monkeypatch.undo()
    piped = runner.invoke(app, ["runs", "ls", "--root", str(root)]).output
    assert '["circle","square","triangle","cross","ring","star"]' in piped and "dataset" in piped.splitlines()[0]
    assert "more columns" not in piped
