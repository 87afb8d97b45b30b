"""The quota room."""
