"""privacy area of the hub."""
