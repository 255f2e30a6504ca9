"""ftui engine: data, models, fine-tuning and a callback-driven trainer. Never imports Textual."""

from __future__ import annotations

__version__ = "0.1.0"
