"""The topic layout under `<prefix>/<opaque hub id>/`: no names, rooms or device ids in clear."""

from __future__ import annotations

from dataclasses import dataclass

from hub.cloud.crypto import SyncKeys


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    hub: str  # opaque hub topic id

    @classmethod
    def of(cls, prefix: str, keys: SyncKeys) -> Topics:
        return cls(prefix.strip("/"), keys.hub_topic)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.hub}"

    @property
    def stream(self) -> str:
        """Every synced change, in sequence order (QoS 1, not retained)."""
        return f"{self.base}/s"

    @property
    def devices(self) -> str:
        """Retained: the latest device list."""
        return f"{self.base}/r/devices"

    @property
    def automations(self) -> str:
        """Retained: the latest automation definitions."""
        return f"{self.base}/r/automations"

    def device_state(self, device_tid: str) -> str:
        """Retained: the latest state of one device."""
        return f"{self.base}/r/d/{device_tid}"

    def commands(self, client_tid: str) -> str:
        """A remote client's commands to the hub."""
        return f"{self.base}/c/{client_tid}"

    @property
    def all_commands(self) -> str:
        return f"{self.base}/c/+"

    def answers(self, client_tid: str) -> str:
        """The hub's answers to one remote client."""
        return f"{self.base}/a/{client_tid}"

    @property
    def everything(self) -> str:
        return f"{self.base}/#"
