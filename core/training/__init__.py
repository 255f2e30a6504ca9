"""The callback-driven trainer, its callbacks, metrics, checkpoint io and control channel."""
