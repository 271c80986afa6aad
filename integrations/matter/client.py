"""The hub's view of a Matter controller server, and its python-matter-server implementation.

The integration speaks only to `MatterServerClient`: the websocket API that
python-matter-server defines (commands `start_listening`, `commission_with_code`,
`device_command`, `write_attribute`, `open_commissioning_window`, `remove_node`, events
`node_added/updated/removed`, `attribute_updated`, `node_event`). The matter.js server
(`matter-server` on npm) implements the same API, so it can replace the Python one by giving
another implementation of this Protocol. Commands go as (cluster id, command name, payload
dict), as on the wire, so no CHIP cluster objects are needed to send them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from integrations.matter.thirdparty import recording_client


class ServerError(Exception):
    """The server refused or failed a request; `code` is its error code when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the hub keeps of a node: its id, whether it answers, its attributes by path
    ("endpoint/cluster/attribute" -> value, as the server reports them)."""

    node_id: int
    available: bool
    attributes: dict[str, Any]

    def value(self, endpoint: int, cluster: int, attribute: int, default: Any = None) -> Any:
        return self.attributes.get(f"{endpoint}/{cluster}/{attribute}", default)

    def has(self, endpoint: int, cluster: int, attribute: int) -> bool:
        """Whether the endpoint reports the attribute at all (null included)."""
        return f"{endpoint}/{cluster}/{attribute}" in self.attributes

    def endpoints_with(self, cluster: int) -> list[int]:
        """Endpoints that carry `cluster` (its ClusterRevision attribute is mandatory)."""
        found = set()
        for path in self.attributes:
            ep, cl, _ = path.split("/", 2)
            if int(cl) == cluster:
                found.add(int(ep))
        return sorted(found)


# (kind, node_id, data): kind is "node" (data: NodeView), "removed" (None),
# "event" (data: {"endpoint", "cluster", "event", "data"})
Listener = Callable[[str, int, Any], None]


class MatterServerClient(Protocol):
    """A connection to a Matter controller server's websocket API."""

    async def listen(self, ready: asyncio.Event) -> None:
        """Connect, fetch every node (then set `ready`), deliver events until the connection
        ends (returns or raises)."""
        ...

    async def close(self) -> None: ...

    def nodes(self) -> list[NodeView]: ...

    def node(self, node_id: int) -> NodeView | None: ...

    def on_change(self, listener: Listener) -> Callable[[], None]: ...

    async def commission_with_code(self, code: str, network_only: bool = True) -> int:
        """Commission a device with its manual pairing code or QR payload; its node id.
        `network_only=False` also looks over BLE and hands the device the Wi-Fi set by
        `set_wifi_credentials`."""
        ...

    async def set_wifi_credentials(self, ssid: str, password: str) -> None:
        """The Wi-Fi the server gives devices it commissions over BLE (a secret)."""
        ...

    async def device_command(self, node_id: int, endpoint: int, cluster: int, command: str,
                             payload: dict[str, Any], timed_ms: int | None = None) -> Any: ...

    async def write_attribute(self, node_id: int, path: str, value: Any) -> Any: ...

    async def open_commissioning_window(self, node_id: int, timeout: int = 300
                                        ) -> dict[str, Any]:
        """Let another controller (a phone ecosystem) commission the node: its codes."""
        ...

    async def remove_node(self, node_id: int) -> None: ...

    def server_info(self) -> dict[str, Any]: ...


class PythonMatterServerClient:
    """`MatterServerClient` over python-matter-server's own client (`matter_server.client`),
    which keeps the node cache current from the server's events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        self._session: Any = None
        self._listeners: list[Listener] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._attributes: dict[int, dict[str, Any]] = {}  # node -> path -> raw value

    async def listen(self, ready: asyncio.Event) -> None:
        import aiohttp
        from matter_server.common.models import EventType

        self._session = aiohttp.ClientSession()
        try:
            self._client = recording_client(self.url, self._session, self._attribute_updated)
            await self._client.connect()

            def on_event(event: EventType, data: Any) -> None:
                self._dispatch(event, data)

            self._unsubscribe = self._client.subscribe_events(on_event)
            nodes_ready = asyncio.Event()
            listening = asyncio.ensure_future(self._client.start_listening(nodes_ready))
            waiting = asyncio.ensure_future(nodes_ready.wait())
            await asyncio.wait((listening, waiting), return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if nodes_ready.is_set():
                for node in self._client.get_nodes():
                    self._attributes[node.node_id] = dict(node.node_data.attributes)
                ready.set()
            await listening
        finally:
            await self.close()

    async def close(self) -> None:
        client, session = self._client, self._session
        self._client = self._session = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._attributes.clear()
        if client is not None:
            await client.disconnect()
        if session is not None:
            await session.close()

    def nodes(self) -> list[NodeView]:
        if self._client is None:
            return []
        return [self._view(n) for n in self._client.get_nodes()]

    def node(self, node_id: int) -> NodeView | None:
        for node in self._client.get_nodes() if self._client is not None else ():
            if node.node_id == node_id:
                return self._view(node)
        return None

    def on_change(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def commission_with_code(self, code: str, network_only: bool = True) -> int:
        data = await self._call(self._connected().commission_with_code, code,
                                network_only=network_only)
        return int(data.node_id)

    async def set_wifi_credentials(self, ssid: str, password: str) -> None:
        # the library logs messages only with MATTER_VERBOSE_LOGGING set; the hub never sets it
        await self._call(self._connected().set_wifi_credentials, ssid, password)

    async def device_command(self, node_id: int, endpoint: int, cluster: int, command: str,
                             payload: dict[str, Any], timed_ms: int | None = None) -> Any:
        from matter_server.common.models import APICommand

        return await self._call(self._connected().send_command, APICommand.DEVICE_COMMAND,
                                node_id=node_id, endpoint_id=endpoint, cluster_id=cluster,
                                command_name=command, payload=payload, response_type=None,
                                timed_request_timeout_ms=timed_ms)

    async def write_attribute(self, node_id: int, path: str, value: Any) -> Any:
        return await self._call(self._connected().write_attribute, node_id, path, value)

    async def open_commissioning_window(self, node_id: int, timeout: int = 300
                                        ) -> dict[str, Any]:
        params = await self._call(self._connected().open_commissioning_window, node_id,
                                  timeout=timeout)
        return {"setup_pin_code": params.setup_pin_code,
                "manual_code": params.setup_manual_code, "qr_code": params.setup_qr_code}

    async def remove_node(self, node_id: int) -> None:
        await self._call(self._connected().remove_node, node_id)

    def server_info(self) -> dict[str, Any]:
        info = self._client.server_info if self._client is not None else None
        if info is None:
            return {}
        return {"sdk_version": info.sdk_version, "schema_version": info.schema_version,
                "fabric_id": info.fabric_id, "compressed_fabric_id": info.compressed_fabric_id,
                "bluetooth_enabled": info.bluetooth_enabled}

    # -- internals -------------------------------------------------------------------------

    def _connected(self) -> Any:
        if self._client is None:
            raise ServerError("the Matter server is not connected", "not_connected")
        return self._client

    @staticmethod
    async def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from matter_server.client.exceptions import MatterClientException
        from matter_server.common.errors import MatterError

        try:
            return await method(*args, **kwargs)
        except MatterError as exc:
            raise ServerError(str(exc) or type(exc).__name__,
                              str(getattr(exc, "error_code", "")) or None) from None
        except MatterClientException as exc:
            raise ServerError(f"{type(exc).__name__}: {exc}", "not_connected") from None

    def _dispatch(self, event: Any, data: Any) -> None:
        from matter_server.common.models import EventType

        if event in (EventType.NODE_ADDED, EventType.NODE_UPDATED):
            self._attributes[data.node_id] = dict(data.node_data.attributes)
            self._emit("node", data.node_id, self._view(data))
        elif event is EventType.NODE_REMOVED:
            self._attributes.pop(int(data), None)
            self._emit("removed", int(data), None)
        elif event is EventType.NODE_EVENT:
            self._emit("event", data.node_id, {
                "endpoint": data.endpoint_id, "cluster": data.cluster_id,
                "event": data.event_id, "data": data.data})

    def _attribute_updated(self, node_id: int, path: str, value: Any) -> None:
        attributes = self._attributes.get(node_id)
        if attributes is None or self._client is None:
            return
        attributes[path] = value
        view = self.node(node_id)
        if view is not None:
            self._emit("node", node_id, view)

    def _view(self, node: Any) -> NodeView:
        raw = self._attributes.get(node.node_id)
        if raw is None:
            raw = self._attributes[node.node_id] = dict(node.node_data.attributes)
        return NodeView(int(node.node_id), bool(node.available), dict(raw))

    def _emit(self, kind: str, node_id: int, data: Any) -> None:
        for listener in list(self._listeners):
            listener(kind, node_id, data)
