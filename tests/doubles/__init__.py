"""Test doubles shared across areas (fake BlueZ, ...)."""
