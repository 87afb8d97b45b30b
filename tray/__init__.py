"""codex-pool: several ChatGPT (Codex) accounts used as one, from the tray."""

__version__ = "0.1.0"
