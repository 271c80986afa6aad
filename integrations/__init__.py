"""Integrations: one package per device family, each with a manifest.json."""
