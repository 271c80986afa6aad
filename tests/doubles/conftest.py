"""Fixtures for the doubles' own tests."""

from tests.doubles.bluez import fake_bluez  # noqa: F401
