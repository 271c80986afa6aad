"""The home's Wi-Fi networks, kept in the vault: checked on the way in, never shown back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hub.errors import NotFound, ValidationError
from hub.vault import EntryInfo, Vault

Security = Literal["wpa2-psk", "wpa3-sae", "wpa2-wpa3", "open"]
SECURITY_TYPES: tuple[str, ...] = ("wpa2-psk", "wpa3-sae", "wpa2-wpa3", "open")
KIND = "wifi"


@dataclass(frozen=True, slots=True)
class WifiCredentials:
    """What a device needs to join a network. Never logged: repr hides the password."""

    ssid: str
    password: str
    security: str

    def __repr__(self) -> str:
        return f"WifiCredentials(ssid={self.ssid!r}, security={self.security!r})"

    def to_secret_json(self) -> dict[str, str]:
        return {"ssid": self.ssid, "password": self.password, "security": self.security}


def check_ssid(ssid: Any, field: str = "ssid") -> str:
    """An SSID is 1-32 bytes of UTF-8 (IEEE 802.11)."""
    if not isinstance(ssid, str) or not ssid:
        raise ValidationError(field, "SSID must be a non-empty string")
    size = len(ssid.encode("utf-8"))
    if size > 32:
        raise ValidationError(field, f"SSID is {size} bytes in UTF-8; at most 32 are allowed")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in ssid):
        raise ValidationError(field, "SSID must not contain control characters")
    return ssid


def check_password(password: Any, security: str, field: str = "password") -> str:
    """A WPA passphrase is 8-63 printable ASCII characters; open networks take none."""
    if security == "open":
        if password not in (None, ""):
            raise ValidationError(field, "an open network takes no password")
        return ""
    if not isinstance(password, str):
        raise ValidationError(field, "required: a string of 8-63 characters")
    if not 8 <= len(password) <= 63:
        raise ValidationError(field, f"must be 8-63 characters, got {len(password)}")
    if any(not 0x20 <= ord(c) <= 0x7E for c in password):
        raise ValidationError(field, "must be printable ASCII characters (WPA passphrase)")
    return password


SECURITY_ALIASES = {"wpa2": "wpa2-psk", "wpa3": "wpa3-sae"}


def check_security(security: Any, field: str = "security") -> str:
    """One of SECURITY_TYPES (the short names `wpa2`, `wpa3` are accepted too)."""
    if isinstance(security, str):
        security = SECURITY_ALIASES.get(security, security)
    if security not in SECURITY_TYPES:
        raise ValidationError(field, f"expected one of {', '.join(SECURITY_TYPES)}")
    return security


class WifiNetworks:
    """The Wi-Fi networks devices may be given, stored as `wifi` entries of the vault."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault

    async def put(self, ssid: str, password: str | None, security: str) -> tuple[EntryInfo, bool]:
        check_ssid(ssid)
        security = check_security(security)
        pw = check_password(password, security)
        return await self._vault.put(
            KIND, ssid, {"password": pw, "security": security}, {"security": security}
        )

    async def list(self) -> list[EntryInfo]:
        return await self._vault.entries(KIND)

    async def delete(self, ssid: str) -> None:
        if not await self._vault.delete(KIND, ssid):
            raise NotFound(f"no Wi-Fi network {ssid!r} in the vault")

    async def credentials(self, ssid: str) -> WifiCredentials:
        """The network's credentials, for a provisioning job; marks it used."""
        try:
            secret = await self._vault.get(KIND, ssid)
        except NotFound:
            raise ValidationError("ssid", f"no Wi-Fi network {ssid!r} in the vault; add it "
                                  "with PUT /api/wifi/networks/{ssid}") from None
        await self._vault.touch(KIND, ssid)
        return WifiCredentials(ssid, secret["password"], secret["security"])


def network_json(info: EntryInfo) -> dict[str, Any]:
    return {
        "ssid": info.name,
        "security": info.public.get("security"),
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "last_used": info.last_used,
    }
