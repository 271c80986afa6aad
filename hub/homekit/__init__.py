"""The HomeKit bridge: chosen hub devices shown in Apple Home (HAP-python, imported lazily)."""
