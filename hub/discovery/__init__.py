"""discovery area of the hub."""
