"""provisioning area of the hub."""
