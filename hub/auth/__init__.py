"""auth area of the hub."""
