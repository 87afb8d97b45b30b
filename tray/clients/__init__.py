"""The clients room."""
