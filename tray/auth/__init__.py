"""The auth room."""
