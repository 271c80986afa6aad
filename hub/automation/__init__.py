"""automation area of the hub."""
