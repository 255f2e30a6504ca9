"""A prominent banner for what must not be missed: a failure, a deleted run, corrupt lines."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class AlertBanner(Static):
    """Hidden while there is nothing to say; errors in red, warnings in yellow."""

    DEFAULT_CSS = """
    AlertBanner {
        height: auto;
        max-height: 4;
        padding: 0 1;
        display: none;
    }
    AlertBanner.-error {
        display: block;
        background: $error;
        color: $text;
        text-style: bold;
    }
    AlertBanner.-warning {
        display: block;
        background: $warning 40%;
        color: $text;
    }
    """

    def show(self, errors: list[str], warnings: list[str]) -> None:
        """Show the messages (errors first); hide when both are empty."""
        self.set_class(bool(errors), "-error")
        self.set_class(bool(warnings) and not errors, "-warning")
        lines = [f"✖ {m}" for m in errors] + [f"⚠ {m}" for m in warnings]
        self.update(Text("\n".join(lines)))
