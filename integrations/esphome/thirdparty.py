"""The private parts of aioesphomeapi the ESPHome integration relies on, in one place.

`PRIVATE_PARTS` lists them and `tests/core/test_thirdparty.py` checks each against the
installed version, so an upgrade that renames one fails a test loudly. Without them a device
answering with another MAC is retried on ReconnectLogic's short steps instead of its longest
backoff: more attempts, nothing lost.
"""

from __future__ import annotations

import aioesphomeapi as api
from aioesphomeapi.reconnect_logic import MAXIMUM_BACKOFF_TRIES, ReconnectLogic

from hub.facade import PrivatePart

PRIVATE_PARTS = (
    PrivatePart("aioesphomeapi.reconnect_logic", "ReconnectLogic",
                "_handle_connection_failure", False,
                "where ReconnectLogic picks its backoff after a failed connection"),
    PrivatePart("aioesphomeapi.reconnect_logic", "ReconnectLogic", "_tries", True,
                "the backoff step; MAXIMUM_BACKOFF_TRIES is its longest wait"),
)


class SlowOnBadMacReconnectLogic(ReconnectLogic):
    """aioesphomeapi's reconnect logic, with one more refusal that waits its longest backoff.

    An encrypted device's Noise hello names its MAC and aioesphomeapi refuses another one
    (`BadMACAddressAPIError`, before any message is exchanged); that is not one of the
    refusals ReconnectLogic backs off fully for (its AUTH_EXCEPTIONS), so it would retry on
    the short steps forever. The same mechanism it uses for a refused key applies here."""

    async def _handle_connection_failure(self, err: Exception) -> None:
        await super()._handle_connection_failure(err)
        if isinstance(err, api.BadMACAddressAPIError):
            self._tries = MAXIMUM_BACKOFF_TRIES
