"""The CLI surface: every command registered, --version, and a start-up that imports neither torch nor Textual."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from core import __version__
from tui.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_every_design_command_is_registered() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "watch", "ctl", "inspect", "diff", "export", "eval", "explain", "config", "data", "model"):
        assert f" {command} " in result.output or f"\n  {command}" in result.output, command
    for group, subs in {"config": ("check", "show", "schema"), "data": ("preview",), "model": ("show", "graph")}.items():
        out = runner.invoke(app, [group, "-h"]).output
        for sub in subs:
            assert sub in out


def test_cli_import_leaves_torch_and_textual_out() -> None:
    code = (
        "import sys, tui.cli, core.config, core.runs, core.launch;"
        "bad = [m for m in ('torch', 'textual', 'torchvision') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_and_config_check_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from tui import cli\n"
        "sys.argv = ['ftui', 'config', 'check', 'sample_configs/quickstart.yaml']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "assert 'torch' not in sys.modules and 'textual' not in sys.modules\n"
    )
    from pathlib import Path

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
