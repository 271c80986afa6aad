"""Matter devices through a local Matter controller server (python-matter-server).

The hub does not speak Matter itself: the server (its own process and venv,
systemd/uone-matter.service) holds the fabric, commissions devices and keeps their
subscriptions; the hub is a client of its websocket API (`client.MatterServerClient`) and
maps nodes to hub devices (`clusters`). When the server is absent or down the hub runs on:
the integration stays loaded, its devices unavailable, health says why, and the hub's
ReconnectLoop reconnects. See docs/matter.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hub.facade import (
    BackoffPolicy,
    Device,
    DeviceUnavailable,
    IntegrationContext,
    ReconnectLoop,
    ReconnectState,
    ValidationError,
)
from integrations.matter import clusters, memory
from integrations.matter.attestation import DEFAULT_LOG, attest, log_size
from integrations.matter.client import (
    MatterServerClient,
    NodeView,
    PythonMatterServerClient,
    ServerError,
)
from integrations.matter.serverlog import failure_in_log

DEFAULT_URL = "ws://127.0.0.1:5580/ws"
NODE_NOT_EXISTS = "5"  # python-matter-server's error code for a node it does not hold
MEMORY_EVERY = 30.0  # seconds between samples of the server's memory for health
Progress = Callable[[str, str | None], None]  # (step, message)


class WifiSecret(Protocol):
    """The home's Wi-Fi from the vault (hub.provisioning.wifi.WifiCredentials)."""

    @property
    def ssid(self) -> str: ...

    @property
    def password(self) -> str: ...


class CommissionError(Exception):
    """Commissioning ended without a device; `code` says why for the API, `attestation`
    (JSON) when the device was refused for its attestation."""

    def __init__(self, code: str, message: str,
                 attestation: dict[str, Any] | None = None) -> None:
        self.code = code
        self.attestation = attestation
        super().__init__(message)


def create() -> MatterIntegration:
    return MatterIntegration()


def device_id(node_id: int) -> str:
    return f"matter-{node_id}"


def check_code(code: Any) -> str:
    """A manual pairing code (11 or 21 digits, dashes and spaces allowed) or a QR payload
    (MT:...); raises ValidationError("code") otherwise, before the server is asked."""
    if not isinstance(code, str):
        raise ValidationError("code", "expected a string")
    text = code.strip()
    if text.startswith("MT:"):
        if len(text) < 10 or not all(c.isalnum() or c in "-.*/+ $%:" for c in text):
            raise ValidationError("code", "not a Matter QR payload (MT:...)")
        return text
    digits = text.replace("-", "").replace(" ", "")
    if not digits.isdigit() or len(digits) not in (11, 21):
        raise ValidationError("code", "expected the 11- or 21-digit manual pairing code "
                              "or the MT:... QR payload printed on the device")
    if _verhoeff_check(digits[:-1]) != int(digits[-1]):
        raise ValidationError("code", "the pairing code's check digit is wrong: a typo?")
    return digits


@dataclass
class MatterIntegration:
    client_factory: Callable[[str], MatterServerClient] = PythonMatterServerClient
    client: MatterServerClient | None = None
    loop: ReconnectLoop | None = None
    ctx: IntegrationContext | None = None
    url: str = DEFAULT_URL
    models: dict[int, clusters.NodeModel] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    # node -> Attestation.to_json() of the nodes this hub commissioned (kept across restarts)
    attestations: dict[int, dict[str, Any]] = field(default_factory=dict)
    commission_timeout: float = 120.0
    commissioning: int = 0  # commissioning calls in flight (their nodes are theirs to adopt)
    adopting: set[int] = field(default_factory=set)  # nodes being attested before registered
    # nodes deleted or erased from the hub that the server may still hold: removed from the
    # fabric at the next connection, never registered again meanwhile (kept across restarts)
    removals: set[int] = field(default_factory=set)
    memory_file: Path = memory.DEFAULT_CGROUP
    server_log: Path = DEFAULT_LOG
    memory: dict[str, Any] = field(default_factory=lambda: {
        "server": {"bytes": None, "unknown": "not measured yet"}, "hub": {"bytes": None}})

    async def setup(self, ctx: IntegrationContext) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.url = str(cfg.get("server_url", DEFAULT_URL))
        self.commission_timeout = float(cfg.get("commission_timeout", 120.0))
        self.memory_file = Path(cfg.get("server_memory", memory.DEFAULT_CGROUP))
        self.server_log = Path(cfg.get("server_log", DEFAULT_LOG))
        for device in ctx.devices():  # known nodes: unavailable until the server says so
            ctx.set_available(device.id, False)
        known = {device.id for device in ctx.devices()}
        deleted: dict[int, Any] = {}
        for key, value in (await ctx.stored_values()).items():
            if key.startswith("attestation/"):
                self.attestations[int(key.removeprefix("attestation/"))] = value
            elif key.startswith("removal/"):
                self.removals.add(int(key.removeprefix("removal/")))
            elif key.startswith("adopted/") and value.get("device_id") not in known:
                # deleted or erased while this integration was not loaded (forget_device
                # never ran): it leaves the fabric now, and is never registered again
                deleted[int(key.removeprefix("adopted/"))] = value
        for node_id, value in deleted.items():
            ctx.forget_value(f"adopted/{node_id}")
            if self.attestations.pop(node_id, None) is not None:
                ctx.forget_value(f"attestation/{node_id}")
            self.removals.add(node_id)
            ctx.store_value(f"removal/{node_id}", value)
            ctx.log.info("Matter node %s was deleted while Matter was not running: it leaves "
                         "the fabric", node_id)
        self.loop = ReconnectLoop(
            f"Matter server {self.url}", self._session, clock=ctx.clock, log=ctx.log,
            policy=BackoffPolicy(initial=float(cfg.get("backoff_initial", 1.0)),
                                 maximum=float(cfg.get("backoff_max", 60.0))),
            healthy_after=30.0, on_state=self._state_changed, describe=self._describe)
        self.loop.start()
        ctx.on_unload(self.loop.stop)
        ctx.create_task(self._sample_memory(), "memory")

    async def unload(self, ctx: IntegrationContext) -> None:
        for device in ctx.devices():
            ctx.set_available(device.id, False)

    async def command(self, ctx: IntegrationContext, device: Device, command: str,
                      params: dict[str, Any]) -> Any:
        client, node_id = self._client(), _node_id(device)
        node_model = self.models.get(node_id)
        if node_model is None or command not in node_model.targets:
            raise DeviceUnavailable(f"node {node_id} is not known to the Matter server")
        endpoint, act = clusters.action(node_model, command, params)
        try:
            if act.attribute is not None:
                await client.write_attribute(node_id, f"{endpoint}/{act.cluster}/"
                                             f"{act.attribute}", act.value)
            else:
                assert act.command is not None
                await client.device_command(node_id, endpoint, act.cluster, act.command,
                                            act.payload, act.timed_ms)
        except ServerError as exc:
            raise DeviceUnavailable(f"the Matter device did not carry out {command}: "
                                    f"{exc}") from None
        return {"node_id": node_id, "endpoint": endpoint}

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        """Deleted or erased: decommission the node (it leaves the hub's fabric). The removal
        is kept (durably) until the server confirms it: a server that is down or drops the
        connection meanwhile gets it at the next connection, and the node, which it still
        holds until then, is not registered again."""
        node_id = _node_id(device)
        self.models.pop(node_id, None)
        if self.attestations.pop(node_id, None) is not None:
            ctx.forget_value(f"attestation/{node_id}")
        ctx.forget_value(f"adopted/{node_id}")
        self.removals.add(node_id)
        ctx.store_value(f"removal/{node_id}", {"device_id": device.id})
        client = self.client
        if client is None:
            ctx.log.info("Matter node %s will leave the fabric when the server is back",
                         node_id)
            return
        await self._remove(client, node_id)

    async def _remove(self, client: MatterServerClient, node_id: int) -> bool:
        """Ask the server to remove a node; True once it is gone (or was never there)."""
        assert self.ctx is not None
        try:
            await client.remove_node(node_id)
        except ServerError as exc:
            if exc.code != NODE_NOT_EXISTS:
                self.ctx.log.warning("Matter node %s not removed from the fabric yet (tried "
                                     "again at the next connection): %s", node_id, exc)
                return False
        self._removed(node_id)
        return True

    def _removed(self, node_id: int) -> None:
        if node_id in self.removals:
            self.removals.discard(node_id)
            assert self.ctx is not None
            if not self.ctx.closed:
                self.ctx.forget_value(f"removal/{node_id}")

    # what the API calls (hub/api/routes/matter.py)

    parse_code = staticmethod(check_code)

    @property
    def connected(self) -> bool:
        return self.client is not None and self.loop is not None and \
            self.loop.state is ReconnectState.CONNECTED

    async def commission(self, code: str, progress: Progress, wifi: WifiSecret | None = None
                         ) -> Device:
        """Commission a device with its pairing code; register it; return it. Over IP, or
        with `wifi` over BLE: the server hands the device the home's Wi-Fi from the vault."""
        code = check_code(code)
        client = self._client()
        if wifi is not None:
            progress("wifi", f"the Matter server has the credentials of {wifi.ssid} for the "
                     "device")
            try:
                await client.set_wifi_credentials(wifi.ssid, wifi.password)
            except ServerError as exc:
                raise CommissionError("wifi_refused", "the Matter server did not take the "
                                      f"Wi-Fi credentials: {exc}") from None
            progress("commissioning", "the Matter server is looking for the device over "
                     f"Bluetooth LE; it will join {wifi.ssid}")
        else:
            progress("commissioning", "the Matter server is looking for the device on the LAN")
        log_mark = await asyncio.to_thread(log_size, self.server_log)
        call = asyncio.ensure_future(client.commission_with_code(code,
                                                                 network_only=wifi is None))
        self.commissioning += 1  # meanwhile new nodes are this call's: it adopts its own
        followed = False
        try:
            try:
                done, _ = await asyncio.wait((call,), timeout=self.commission_timeout)
            except BaseException:
                call.cancel()
                raise
            if not done:
                # the server goes on (cancelling here would not stop it): follow the call,
                # so that a device that joins later is attested before it is added
                assert self.ctx is not None
                self.ctx.create_task(self._follow_late(client, call), "late commissioning")
                followed = True
                raise CommissionError(
                    "timeout", f"the device did not finish joining within "
                    f"{self.commission_timeout:.0f} s; the Matter server is still trying: if "
                    "it joins later, the hub checks its attestation before adding it")
            try:
                node_id = call.result()
            except ServerError as exc:
                if wifi is not None and "Bluetooth commissioning is not available" in str(exc):
                    raise CommissionError(
                        "ble_unavailable", "the Matter server cannot use Bluetooth: it runs "
                        "without --bluetooth-adapter or the machine has no working BLE "
                        "adapter, so it cannot hand the device the Wi-Fi (docs/matter.md)"
                        ) from None
                raise await self._commission_failure(exc, log_mark) from None
            progress("interviewed", f"node {node_id} joined the hub's fabric")
            return await self._adopt(client, node_id, progress)
        finally:
            if not followed:
                self._commission_done(client)

    async def _adopt(self, client: MatterServerClient, node_id: int,
                     progress: Progress | None = None) -> Device:
        """A node that joined the fabric: check its attestation, keep it, then register it
        (a node is never registered before its attestation is known)."""
        ctx = self.ctx
        assert ctx is not None
        self.adopting.add(node_id)
        try:
            if client.node(node_id) is None:
                raise CommissionError("not_interviewed", f"node {node_id} was commissioned "
                                      "but the server has not reported it")
            result = await attest(client, node_id, ctx.clock.time())
            self.attestations[node_id] = result.to_json()
            ctx.store_value(f"attestation/{node_id}", self.attestations[node_id])
            if progress is not None:
                progress("attested", f"attestation {result.outcome}: {result.reason}")
            node = client.node(node_id)
            if node is None:
                raise CommissionError("not_interviewed", f"node {node_id} left the server "
                                      "while it was being attested")
            device = self._register(node)
            ctx.store_value(f"adopted/{node_id}", {"device_id": device.id})
            if result.outcome == "failed":
                ctx.set_problems(device.id, {"attestation": result.reason or "failed"})
            return device
        finally:
            self.adopting.discard(node_id)

    async def _follow_late(self, client: MatterServerClient, call: asyncio.Future[int]
                           ) -> None:
        """A commissioning the API gave up on: the node it may still bring is attested and
        added (with its attestation, and its problem when it failed), not silently adopted."""
        assert self.ctx is not None
        try:
            node_id = await call
            device = await self._adopt(client, node_id)
            self.ctx.log.warning("Matter node %s joined after its commissioning timed out; "
                                 "attestation %s: added as %s", node_id,
                                 self.attestations[node_id]["outcome"], device.id)
        except (ServerError, CommissionError) as exc:
            self.ctx.log.info("the Matter commissioning that timed out ended: %s", exc)
        finally:
            call.cancel()
            self._commission_done(client)

    def _commission_done(self, client: MatterServerClient) -> None:
        """One commissioning less in flight; with none left, nodes that joined meanwhile
        and no call adopted (a connection lost mid-way) are adopted, attestation first."""
        self.commissioning -= 1
        if self.commissioning == 0 and self.client is client:
            for node in client.nodes():
                self._adopt_stray(client, node.node_id)

    def _adopt_stray(self, client: MatterServerClient, node_id: int) -> None:
        """A node the server holds that the hub does not know and no commissioning of this
        hub is adopting: attest it, then add it, in the background."""
        ctx = self.ctx
        assert ctx is not None
        if (node_id in self.models or node_id in self.adopting or node_id in self.removals
                or ctx.device(device_id(node_id)) is not None):
            return

        async def adopt() -> None:
            try:
                device = await self._adopt(client, node_id)
            except (ServerError, CommissionError) as exc:
                ctx.log.warning("Matter node %s (not commissioned by a job of this hub) not "
                                "added: %s", node_id, exc)
                return
            ctx.log.warning("Matter node %s joined the fabric without a commissioning job "
                            "of this hub waiting for it; attestation %s: added as %s",
                            node_id, self.attestations[node_id]["outcome"], device.id)

        self.adopting.add(node_id)  # at once: the next change of the node must not start another
        ctx.create_task(adopt(), f"adopt node {node_id}")

    def attestation(self, device: Device) -> dict[str, Any] | None:
        """The attestation of a node this hub commissioned, as JSON (None if not known)."""
        return self.attestations.get(_node_id(device))

    async def open_commissioning_window(self, device: Device, timeout: int = 300
                                        ) -> dict[str, Any]:
        try:
            return await self._client().open_commissioning_window(_node_id(device), timeout)
        except ServerError as exc:
            raise DeviceUnavailable(f"the device did not open a commissioning window: "
                                    f"{exc}") from None

    async def measure_memory(self) -> dict[str, Any]:
        """Sample the server's memory (cgroup, else its process) beside the hub's RSS."""
        server, hub = await asyncio.to_thread(
            lambda: (memory.server_memory(self.url, self.memory_file), memory.own_rss()))
        self.memory = {"server": server, "hub": {"bytes": hub}}
        return self.memory

    def health(self) -> dict[str, Any]:
        """The server connection, for /api/health (no personal data)."""
        loop = self.loop
        state = loop.state.value if loop is not None else "stopped"
        out: dict[str, Any] = {"server_url": self.url, "server": state,
                               "nodes": len(self.models), **self.server,
                               "memory": self.memory}
        if self.removals:  # deleted from the hub, to be removed from the fabric
            out["pending_removals"] = sorted(self.removals)
        if state != "connected":
            out["problem"] = (f"Matter server {self.url} not reachable"
                              + (f": {loop.last_error}" if loop and loop.last_error else "")
                              + " (is uone-matter.service running?)")
        return out

    # -- internals -------------------------------------------------------------------------

    def _client(self) -> MatterServerClient:
        if self.client is None or self.loop is None or \
                self.loop.state is not ReconnectState.CONNECTED:
            raise DeviceUnavailable(f"the Matter server ({self.url}) is not connected")
        return self.client

    async def _session(self) -> None:
        client = self.client_factory(self.url)
        ready = asyncio.Event()
        unsubscribe = client.on_change(self._on_change)
        listening = asyncio.ensure_future(client.listen(ready))
        try:
            waiting = asyncio.ensure_future(ready.wait())
            await asyncio.wait((listening, waiting), return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            if not ready.is_set():
                await listening  # raises why it failed
                return
            self.client = client
            self.server = {"server_" + k: v for k, v in client.server_info().items()
                           if k in ("sdk_version", "schema_version", "bluetooth_enabled")}
            self.loop.connected()  # type: ignore[union-attr]
            self._sync(client.nodes())
            if self.removals:  # deleted while the server was away: it may still hold them
                assert self.ctx is not None
                self.ctx.create_task(self._send_removals(client), "removals")
            await listening
        finally:
            unsubscribe()
            self.client = None
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await client.close()
            assert self.ctx is not None
            if not self.ctx.closed:
                for device in self.ctx.devices():
                    self.ctx.set_available(device.id, False)

    async def _send_removals(self, client: MatterServerClient) -> None:
        for node_id in sorted(self.removals):
            if self.client is not client:
                return  # disconnected: the next connection sends the rest
            if await self._remove(client, node_id):
                assert self.ctx is not None
                self.ctx.log.info("Matter node %s, deleted while the server was away, left "
                                  "the fabric", node_id)

    def _sync(self, nodes: list[NodeView]) -> None:
        """The server's nodes at (re)connection: update each known one, attest and add the
        ones the hub does not know (none pending removal); nodes the server no longer has
        stay known but unavailable (the owner deletes them)."""
        assert self.ctx is not None
        seen = set()
        for node in nodes:
            if node.node_id in self.removals:
                continue
            if self.ctx.device(device_id(node.node_id)) is None:  # attested before added
                if self.commissioning == 0 and self.client is not None:
                    self._adopt_stray(self.client, node.node_id)
                continue
            seen.add(device_id(node.node_id))
            self._register(node)
        for device in self.ctx.devices():
            if device.id not in seen:
                self.ctx.set_available(device.id, False)

    def _register(self, node: NodeView) -> Device:
        ctx = self.ctx
        assert ctx is not None
        node_model = clusters.model(node)
        self.models[node.node_id] = node_model
        did = device_id(node.node_id)
        existing = ctx.device(did)
        info = _basic_information(node)
        wanted = Device(
            id=did, integration=ctx.name,
            name=existing.name if existing else (info.get("label") or info.get("product")
                                                  or f"Matter node {node.node_id}"),
            model=info.get("product"), manufacturer=info.get("vendor"),
            fw_version=info.get("version"), transport="lan",
            area=existing.area if existing else None, commands=node_model.commands,
            attributes=node_model.attributes, events=node_model.events,
            attribute_meta=node_model.meta)
        device = existing
        if existing is None or _differs(existing, wanted):
            device = ctx.register_device(wanted)
        ctx.set_state(did, clusters.state(node))
        ctx.set_available(did, node.available)
        assert device is not None
        return device

    def _on_change(self, kind: str, node_id: int, data: Any) -> None:
        ctx = self.ctx
        if ctx is None or ctx.closed:
            return
        did = device_id(node_id)
        if kind == "node":
            if node_id in self.removals or node_id in self.adopting:
                return  # deleted from the hub: never registered again; or being attested
            if ctx.device(did) is not None:
                self._register(data)
            elif self.commissioning == 0 and self.client is not None:
                # a node no commissioning of this hub is waiting for (one that timed out
                # and lost its call, another controller's): attested before it is added
                self._adopt_stray(self.client, node_id)
        elif kind == "removed":
            self.models.pop(node_id, None)
            self._removed(node_id)
            if ctx.device(did) is not None:
                ctx.set_available(did, False)
        elif kind == "event" and ctx.device(did) is not None:
            node = self.client.node(node_id) if self.client is not None else None
            if node is None:
                return
            for event_type, payload in clusters.events(node, data["endpoint"],
                                                       data["cluster"], data["event"],
                                                       data["data"]):
                ctx.fire_event(did, event_type, payload)

    async def _commission_failure(self, exc: ServerError, log_mark: int) -> CommissionError:
        """Why the server failed, from what it logged during the attempt (its answer does
        not say): `attestation_failed` naming the check, `wrong_code`, `pairing_refused`,
        `not_found`, else `commission_failed` (serverlog)."""
        try:
            why = await asyncio.to_thread(failure_in_log, self.server_log, log_mark, str(exc))
        except OSError as err:
            return CommissionError("commission_failed", "commissioning failed: the device "
                                   "was not found, refused the code, or failed attestation "
                                   f"({exc}; the server's log {self.server_log} that would "
                                   f"say which is not readable: {err.strerror})")
        return CommissionError(why.code, why.message, why.attestation)

    async def _sample_memory(self) -> None:
        assert self.ctx is not None
        while True:
            await self.measure_memory()
            await self.ctx.clock.sleep(MEMORY_EVERY)

    def _state_changed(self, state: ReconnectState) -> None:
        if state is not ReconnectState.CONNECTED:
            self.server = {}

    def _describe(self, kind: str, exc: BaseException | None) -> str:
        if kind == "up":
            return f"Matter server {self.url}: connected again"
        return (f"Matter server {self.url}: {kind} ({type(exc).__name__}: {exc}); Matter "
                "devices are unavailable until it is back (is uone-matter.service running?)")


def _node_id(device: Device) -> int:
    return int(device.id.removeprefix("matter-"))


def _basic_information(node: NodeView) -> dict[str, Any]:
    b = clusters.BASIC_INFORMATION
    return {"vendor": node.value(0, b, 1), "product": node.value(0, b, 3),
            "label": node.value(0, b, 5) or None, "version": node.value(0, b, 10)}


def _differs(a: Device, b: Device) -> bool:
    return (a.commands, a.attributes, a.events, a.model, a.manufacturer, a.fw_version) != (
        b.commands, b.attributes, b.events, b.model, b.manufacturer, b.fw_version)


_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6), (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4), (9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
_P1 = (1, 5, 7, 6, 2, 8, 3, 0, 9, 4)  # the Verhoeff permutation; P^k is it applied k times
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff_check(digits: str) -> int:
    """The Verhoeff check digit Matter manual pairing codes end with (spec 5.1.4.1)."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        digit = int(ch)
        for _ in range((i + 1) % 8):
            digit = _P1[digit]
        c = _D[c][digit]
    return _INV[c]
