"""Uone Hub: a local-first home hub daemon."""

__version__ = "0.1.0"
