"""The home screen's list of config files a run can be started from."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option


def find_configs(search_dirs: list[Path]) -> list[Path]:
    """``*.yaml``/``*.yml`` files directly inside each directory, in order, without duplicates."""
    seen: set[Path] = set()
    found: list[Path] = []
    for directory in search_dirs:
        if not directory.is_dir():
            continue
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            real = path.resolve()
            if real not in seen and path.is_file():
                seen.add(real)
                found.append(path)
    return found


def display_path(path: Path) -> str:
    """The path relative to the current directory when inside it (what a user would type)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class ConfigList(OptionList):
    """One option per config file; the option id is the path."""

    DEFAULT_CSS = """
    ConfigList {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.paths: list[Path] = []

    def show(self, paths: list[Path]) -> None:
        """Replace the list (only when it changed)."""
        if paths == self.paths:
            return
        self.paths = list(paths)
        self.clear_options()
        self.add_options([Option(Text(display_path(p)), id=str(p)) for p in paths])
        if paths and self.highlighted is None:
            # The quickstart is what a new user wants first.
            names = [p.name for p in paths]
            self.highlighted = names.index("quickstart.yaml") if "quickstart.yaml" in names else 0

    def selected(self) -> Path | None:
        """The highlighted config."""
        if self.highlighted is None or not self.paths:
            return None
        return self.paths[min(self.highlighted, len(self.paths) - 1)]
