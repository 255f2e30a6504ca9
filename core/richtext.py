"""Rich renderables for strings that come from users' files: text, never markup.

Rich reads every ``str`` handed to a table cell, a column header or a ``Console.print`` as markup,
so a class folder named ``[red]bold`` would be drawn red (its name lost), and a tensor named
``x[/]y`` would raise ``MarkupError`` in the middle of ``ftui inspect``. Names of classes, modules,
tensors, runs and paths are data: they go through :func:`plain` or into a :class:`PlainTable`.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def plain(value: Any, style: str = "") -> Any:
    """A ``str`` as literal :class:`~rich.text.Text`; any other renderable unchanged."""
    return Text(value, style=style) if isinstance(value, str) else value


class PlainTable(Table):
    """A :class:`~rich.table.Table` whose string cells and headers are literal text.

    Styled cells are passed as ``Text`` (or any renderable) as before; only bare strings change
    meaning, from markup to text.
    """

    def add_column(self, header: Any = "", *args: Any, **kwargs: Any) -> None:
        super().add_column(plain(header), *args, **kwargs)

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(plain(r) for r in renderables), **kwargs)
