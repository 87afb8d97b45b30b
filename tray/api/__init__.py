"""The api room."""
