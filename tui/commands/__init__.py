"""Bodies of the CLI commands, one module per area, imported lazily by ``tui.cli``."""
