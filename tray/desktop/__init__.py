"""The desktop room."""
