"""Who is asking: roles and the authenticated principal that every API request carries."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.IntEnum):
    """Ordered: each role can do everything the roles below it can."""

    GUEST = 10  # only the devices or areas it was granted
    MEMBER = 20  # see and command devices
    ADMIN = 30  # also manage devices, automations, integrations
    OWNER = 40  # also users, privacy and cloud settings

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown role {name!r} (owner, admin, member, guest)") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user (or script token) for the duration of one request."""

    user_id: str
    username: str
    role: Role
    token_id: str | None = None
    is_minor: bool = False
    granted_devices: frozenset[str] = frozenset()
    granted_areas: frozenset[str] = frozenset()

    def can_see_device(self, device_id: str, area: str | None) -> bool:
        if self.role >= Role.MEMBER:
            return True
        return device_id in self.granted_devices or (
            area is not None and area in self.granted_areas
        )
