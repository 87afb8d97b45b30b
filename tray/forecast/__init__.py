"""The forecast room."""
