"""The private part of python-matter-server's client the Matter integration relies on.

`PRIVATE_PARTS` lists it and `tests/core/test_thirdparty.py` checks it against the installed
version, so an upgrade that renames it fails a test loudly instead of leaving every Matter
device without state updates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.facade import PrivatePart

PRIVATE_PARTS = (
    PrivatePart("matter_server.client.client", "MatterClient", "_handle_event_message", False,
                "where the client takes each event from the server: the raw attribute updates "
                "are read there (its node objects keep values only as CHIP cluster objects)"),
)


def _recording_client_class() -> type:
    from matter_server.client import MatterClient
    from matter_server.common.models import EventMessage, EventType

    class RecordingClient(MatterClient):
        """The library's client, also handing each raw attribute update (node, path, value)
        to the hub: its own node objects keep values only as CHIP cluster objects."""

        def __init__(self, url: str, session: Any,
                     on_attribute: Callable[[int, str, Any], None]) -> None:
            super().__init__(url, session)
            self._on_attribute = on_attribute

        def _handle_event_message(self, msg: EventMessage) -> None:
            super()._handle_event_message(msg)
            if msg.event == EventType.ATTRIBUTE_UPDATED:
                node_id, path, value = msg.data
                self._on_attribute(int(node_id), str(path), value)

    return RecordingClient


def recording_client(url: str, session: Any,
                     on_attribute: Callable[[int, str, Any], None]) -> Any:
    return _recording_client_class()(url, session, on_attribute)
