"""What every command prints to the user's terminal the same way: errors (torch- and Textual-free)."""

from __future__ import annotations


def print_error(message: str) -> None:
    """Print a user-facing error (Rich markup) to stderr: one paragraph, no traceback."""
    from rich.console import Console

    Console(emoji=False, stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}", markup=True)
