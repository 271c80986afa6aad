"""cloud area of the hub."""
