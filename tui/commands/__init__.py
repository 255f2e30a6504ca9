"""Bodies of the CLI commands, one module per area, imported lazily by ``tui.cli``."""

from __future__ import annotations

from core.errors import UserError


def not_built(command: str, issue: int) -> UserError:
    """The error for a command whose issue has not landed yet (exit 2)."""
    return UserError(f"`ftui {command}` is not available in this version yet (tracked in issue #{issue}).")
