"""The notices room."""
