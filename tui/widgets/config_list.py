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


def config_labels(paths: list[Path], width: int | None = None) -> list[Text]:
    """Each config by its file name, on one line (at 80 columns a path wrapped in the middle of a word);
    its folder, dimmed, only where two configs share a name. A name longer than ``width`` loses its
    middle to an ellipsis, so its start and its extension stay."""
    shown = [Path(display_path(p)) for p in paths]
    names = [s.name for s in shown]
    labels = []
    for path in shown:
        name = path.name
        if width is not None and width > 8 and len(name) > width:
            keep = width - 1
            name = name[: keep - keep // 3] + "…" + name[len(name) - keep // 3:]
        text = Text(name, style="bold")
        if names.count(path.name) > 1 and str(path.parent) not in ("", "."):
            folder = f"{path.parent}/"
            room = None if width is None else width - len(name) - 2
            if room is not None and len(folder) > room:
                # its start tells same-named folders apart (a path typed here, the checkout's absolute one)
                folder = folder[: room - 1] + "…" if room >= 4 else ""
            if folder:
                text.append(f"  {folder}", style="dim")
        labels.append(text)
    return labels


def folders_text(paths: list[Path], max_len: int = 28) -> str:
    """Where the listed configs are: their folders as a person types them (``.`` for this one), a long
    one shortened to ``…/NAME/`` so that the list's title stays one line."""
    folders = list(dict.fromkeys(str(Path(display_path(p)).parent) for p in paths))
    text = ", ".join(f if f == "." else f"{f}/" for f in folders)
    if len(text) > max_len:
        short = list(dict.fromkeys(f if f == "." else f"…/{Path(f).name}/" for f in folders))
        text = ", ".join(short)
        if len(short) < len(folders) or len(text) > max_len:  # two folders of one name read as one
            first = folders[0] if len(folders[0]) + 1 <= max_len - 8 else short[0]
            text = f"{first if first == '.' else first.rstrip('/') + '/'} +{len(folders) - 1} more"
    return text


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
        self._fill()
        if paths and self.highlighted is None:
            # The quickstart is what a new user wants first.
            names = [p.name for p in paths]
            self.highlighted = names.index("quickstart.yaml") if "quickstart.yaml" in names else 0

    def _fill(self) -> None:
        highlighted = self.highlighted
        self.clear_options()
        width = None
        if self.size.width:
            region = self.scrollable_content_region
            # the scrollbar these options bring takes its columns after this fill, and a label one column
            # too long wraps its folder onto a line of its own
            scrollbar = 0 if self.show_vertical_scrollbar or len(self.paths) <= region.height else \
                self.styles.scrollbar_size_vertical
            width = region.width - scrollbar - 1
        self.add_options([Option(label, id=str(p)) for p, label in zip(self.paths, config_labels(self.paths, width))])
        if highlighted is not None and self.paths:
            self.highlighted = min(highlighted, len(self.paths) - 1)

    def on_resize(self) -> None:
        if self.paths:
            self._fill()  # names cut to the new width

    def selected(self) -> Path | None:
        """The highlighted config."""
        if self.highlighted is None or not self.paths:
            return None
        return self.paths[min(self.highlighted, len(self.paths) - 1)]
