"""Uone devices: attested BLE provisioning, then control over the LAN (see PROTOCOL.md)."""
