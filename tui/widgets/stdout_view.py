"""The tail of the run's ``stdout.log`` (what the detached ``ftui run`` printed)."""

from __future__ import annotations

from textual.widgets import Log


def clean_tail(text: str, max_lines: int = 400) -> list[str]:
    """Lines as a terminal would show them: a carriage return redraws its line (progress bars)."""
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return lines[-max_lines:]


class StdoutView(Log):
    """Shows the last lines of the log; rewritten only when the text changed."""

    DEFAULT_CSS = """
    StdoutView {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, highlight=False, auto_scroll=True)
        self._shown: str | None = None

    def show(self, text: str) -> None:
        """Show ``text`` (the tail of the file)."""
        if text == self._shown:
            return
        self._shown = text
        self.clear()
        lines = clean_tail(text)
        self.write_lines(lines if lines else ["(stdout.log is empty)"])
