"""The hub as one HomeKit bridge (HAP-python) on the hub's own zeroconf.

A core service, not an integration: it shows devices of every integration, so it needs the
device registry, states, privacy scopes and restriction, and the one command path
(`DeviceCommands.authorize_and_send`), none of which an integration's context gives. It
takes only those services, and HAP-python is imported only once the bridge is enabled.

Nothing is shown by default: the owner picks devices (config `homekit_bridge.devices` plus
the API). A restricted device is never shown (it disappears when it becomes restricted), an
attribute its scope hides never becomes a characteristic. A phone's write becomes a hub
command under the `homekit-bridge` principal and is audited; if the hub refuses it, the
characteristic goes back to the hub's value. The bridge's identity and its paired phones
(HAP-python's state, normally a file) live in the vault; the accessory ids (aid) of exposed
devices are kept in the database so Apple Home keeps its rooms and scenes across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hub.audit import AuditLog
from hub.auth.principal import Principal, Role
from hub.bus import DeviceEvent, DeviceRegistryChanged, EventBus, StateChanged
from hub.clock import Clock
from hub.commands import DeviceCommands
from hub.devices import Device, DeviceRegistry
from hub.errors import Conflict, HubError, NotFound, ValidationError
from hub.homekit.accessories import Link, Plan, plan, press_value
from hub.homekit.config import HomekitBridgeConfig
from hub.state import StateStore
from hub.storage import Database, Schema
from hub.tasks import BackgroundTasks
from hub.thirdparty import install_padded_srp
from hub.vault import Vault

_LOG = logging.getLogger(__name__)

ACTOR = "homekit-bridge"
PRINCIPAL = Principal(user_id=ACTOR, username=ACTOR, role=Role.MEMBER)
VAULT_KIND, VAULT_NAME = "homekit", "bridge"
FIRST_AID = 2  # 1 is the bridge itself
REBUILD_DELAY = 0.2  # s: several changes at once rebuild the bridge once

SCHEMA = Schema(
    "homekit",
    (
        """
        CREATE TABLE homekit_bridge(
            device_id TEXT PRIMARY KEY,
            aid INTEGER NOT NULL UNIQUE,
            source TEXT NOT NULL,       -- 'config' or 'api'
            added_at REAL NOT NULL
        );
        """,
    ),
)


@dataclass
class _Shown:
    """One exposed device as it is in the running bridge."""

    device_id: str
    plan: Plan
    chars: dict[str, Any] = field(default_factory=dict)  # attribute -> HAP-python char
    links: dict[str, Link] = field(default_factory=dict)
    button: Any = None


class HomekitBridge:
    """Runs the bridge while enabled; answers which devices it shows and how to pair."""

    def __init__(self, config: HomekitBridgeConfig, *, db: Database, bus: EventBus,
                 clock: Clock, devices: DeviceRegistry, states: StateStore, vault: Vault,
                 audit: AuditLog, commands: DeviceCommands,
                 zeroconf: Callable[[float], Awaitable[Any]],
                 addresses: Callable[[], list[str]], own_services: set[str],
                 zeroconf_replaced: Callable[[Callable[[], None]], Callable[[], None]]
                 | None = None,
                 addresses_changed: Callable[[Callable[[], None]], Callable[[], None]]
                 | None = None) -> None:
        self.config = config
        self._db, self._bus, self._clock = db, bus, clock
        self._devices, self._states, self._vault = devices, states, vault
        self._audit, self._commands = audit, commands
        self._zeroconf, self._addresses = zeroconf, addresses
        self._zeroconf_replaced = zeroconf_replaced
        self._addresses_changed = addresses_changed
        self._own = own_services  # discovery skips these: the hub does not adopt itself
        self._rows: dict[str, tuple[int, str]] = {}  # device id -> (aid, source)
        self._tasks = BackgroundTasks(_LOG)
        self._unsubscribe: list[Callable[[], None]] = []
        self._driver: Any = None
        self._shown: dict[str, _Shown] = {}
        self._state: dict[str, Any] | None = None  # what the vault holds
        self._saving: asyncio.Task[None] | None = None
        self._dirty = False
        self._rebuild: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self.state = "off"  # off | starting | running | waiting (no mDNS) | failed
        self.error: str | None = None
        self.phone_writes = 0
        self._loader: Any = None  # HAP-python's type tables, read once in a thread
        self._logged: set[tuple[str, ...]] = set()  # causes of refusals already logged

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for row in await self._db.fetchall("SELECT * FROM homekit_bridge"):
            self._rows[row["device_id"]] = (row["aid"], row["source"])
        # a row outlives its choice only by accident (deleted while the hub was down, an
        # older hub, dropped from the config file): a device that later gets the same,
        # predictable id must not be shown unless the owner picks it again
        for device_id, (_aid, source) in list(self._rows.items()):
            if (source == "api" and self._devices.find(device_id) is None) or (
                    source == "config" and device_id not in self.config.devices):
                await self._remove_row(device_id)
        for device_id in self.config.devices:
            if device_id not in self._rows:
                await self._add_row(device_id, "config")
        # followed even while the bridge is off: rows picked then must not go stale
        self._unsubscribe = [self._devices.on_remove(self._forget)]
        if not self.config.enabled:
            return
        self.state = "starting"
        self._unsubscribe += [
            self._bus.subscribe(StateChanged, self._on_state),
            self._bus.subscribe(DeviceEvent, self._on_event),
            self._bus.subscribe(DeviceRegistryChanged, self._on_registry),
        ]
        if self._zeroconf_replaced is not None:  # advertise on the new one: rebuild
            self._unsubscribe.append(self._zeroconf_replaced(self._schedule_rebuild))
        if self._addresses_changed is not None:  # HAP-python listens on the addresses: rebuild
            self._unsubscribe.append(self._addresses_changed(self._schedule_rebuild))
        self._tasks.spawn(self._first_start(), "homekit-bridge-start")

    async def stop(self) -> None:
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe.clear()
        if self._rebuild is not None:
            self._rebuild.cancel()
        await self._tasks.stop()
        async with self._lock:
            await self._stop_driver()
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
        if self.state != "off":
            self.state = "off"

    # -- what the owner sees and changes ---------------------------------------------------

    def exposed(self) -> list[dict[str, Any]]:
        out = []
        for device_id, (aid, source) in sorted(self._rows.items(), key=lambda kv: kv[1][0]):
            device = self._devices.find(device_id)
            shown = self._shown.get(device_id)
            problem = None
            if device is None:
                problem = "no such device"
            elif device.restricted:
                problem = "restricted: never shown in Apple Home"
            elif plan(device) is None:
                problem = "nothing Apple Home can show (or hidden by its privacy scope)"
            out.append({
                "device_id": device_id, "name": device.name if device else None, "aid": aid,
                "source": source, "shown": shown is not None, "problem": problem,
                "characteristics": sorted(shown.chars) if shown else [],
            })
        return out

    def status(self) -> dict[str, Any]:
        """For the owner: state, pairing, the setup code and URI (never the keys)."""
        state = self._state or {}
        return {
            "enabled": self.config.enabled, "state": self.state, "error": self.error,
            "name": self.config.name, "port": self.config.port,
            "paired": bool(state.get("paired")),
            "accessory_id": self._driver.state.mac if self._driver is not None else None,
            "setup_code": state.get("pincode"),
            "setup_uri": self.setup_uri(),
            "devices": self.exposed(), "phone_writes": self.phone_writes,
        }

    def setup_uri(self) -> str | None:
        """The X-HM:// URI a phone reads from the QR code (HAP spec: version 0, IP flag)."""
        state = self._state
        if not state or not state.get("pincode"):
            return None
        payload = (2 << 4 | 2) << 27  # category 2 (bridge), flags 2 (IP)
        payload |= int(state["pincode"].replace("-", ""))
        digits = ""
        while payload:
            payload, r = divmod(payload, 36)
            digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
        return "X-HM://" + digits.rjust(9, "0") + state["setup_id"]

    async def expose(self, device_id: str) -> dict[str, Any]:
        device = self._devices.get(device_id)  # NotFound: 404
        if device.restricted:
            raise Conflict(f"{device_id} is restricted: it is never shown in Apple Home")
        if plan(device) is None:
            raise ValidationError("device_id", f"{device_id} has nothing Apple Home can show "
                                  "(or its privacy scope hides it)")
        if device_id not in self._rows:
            await self._add_row(device_id, "api")
            self._schedule_rebuild()
        return next(d for d in self.exposed() if d["device_id"] == device_id)

    async def unexpose(self, device_id: str) -> None:
        row = self._rows.get(device_id)
        if row is None:
            raise NotFound(f"{device_id} is not shown in Apple Home")
        if row[1] == "config":
            raise Conflict(f"{device_id} is listed in homekit_bridge.devices of the config "
                           "file: remove it there")
        await self._remove_row(device_id)

    # -- the driver ------------------------------------------------------------------------

    async def _first_start(self) -> None:
        # importing HAP-python and reading its service/characteristic tables is file I/O:
        # done in a thread, once, never on the event loop
        self._loader = await asyncio.to_thread(_load_hap)
        zc = await self._zeroconf(120.0)
        if zc is None:
            self.state, self.error = "waiting", "no mDNS: enable discovery.mdns"
            _LOG.error("HomeKit bridge: %s", self.error)
            return
        await self._load_state()
        async with self._lock:
            await self._start_driver(zc)

    async def _load_state(self) -> None:
        try:
            self._state = await self._vault.get(VAULT_KIND, VAULT_NAME)
        except NotFound:
            from pyhap import util

            self._state = {"pincode": _pincode(), "setup_id": util.generate_setup_id(),
                           "hap": None, "paired": False}
            await self._vault.put(VAULT_KIND, VAULT_NAME, self._state)

    async def _start_driver(self, zc: Any) -> None:
        """Build the bridge from the exposed devices and start it (under the lock)."""
        from pyhap.accessory import Bridge
        from pyhap.accessory_driver import AccessoryDriver
        from pyhap.encoder import AccessoryEncoder

        assert self._state is not None
        save, screen = self._snapshot, self._screen_writes

        class VaultDriver(AccessoryDriver):  # HAP-python's state: the vault, not a file
            def set_characteristics(self, chars_query: dict[str, Any],
                                    client_addr: tuple[str, int]) -> dict[str, Any] | None:
                # a phone's bad values are answered here; HAP-python would coerce them, or
                # log a traceback and answer "communication failure" (-70402)
                refused, query, accepted = screen(self, chars_query)
                answer = super().set_characteristics(query, client_addr)
                return _merge_answers(answer, refused, accepted)

            def setup_srp_verifier(self) -> None:  # padded like iOS (hub/thirdparty.py)
                install_padded_srp(self)

            def persist(self) -> None:
                save(self)

            def async_persist(self) -> None:
                save(self)

            def load(self) -> None:  # loaded from the vault before add_accessory
                pass

            def add_accessory(self, accessory: Any) -> None:  # no state file to look for
                self.accessory = accessory
                accessory.aid = 1
                accessory.restore_accessory_state()
                save(self)

        addresses = self._addresses()
        if not addresses:
            self.state, self.error = "waiting", "no network interface for mDNS"
            return
        driver = VaultDriver(
            address=addresses, listen_address=addresses, port=self.config.port,
            pincode=self._state["pincode"].encode(), persist_file="/dev/null",
            loader=self._loader,
            loop=asyncio.get_running_loop(), async_zeroconf_instance=_SharedZeroconf(zc))
        driver.state.setup_id = self._state["setup_id"]
        if self._state.get("hap"):
            AccessoryEncoder.load_into(io.StringIO(self._state["hap"]), driver.state)
        class QuietBridge(Bridge):  # HAP-python prints the setup code: never in logs
            def setup_message(self) -> None:
                pass

        bridge = QuietBridge(driver, self.config.name)
        self._shown = {}
        for device_id, (aid, _source) in sorted(self._rows.items(), key=lambda kv: kv[1][0]):
            device = self._devices.find(device_id)
            if device is None or device.restricted:
                continue
            p = plan(device)
            if p is not None:
                bridge.add_accessory(self._accessory(driver, device, p, aid))
        driver.add_accessory(bridge)
        from pyhap.accessory_driver import AccessoryMDNSServiceInfo

        own = AccessoryMDNSServiceInfo(bridge, driver.state).name
        self._own.add(own)
        self._driver = driver  # before it starts: a stop during the start stops it too
        try:
            await driver.async_start()
        except OSError as exc:
            await self._stop_driver()
            self.state, self.error = "failed", f"cannot listen on port {self.config.port}: {exc}"
            _LOG.error("HomeKit bridge: %s", self.error)
            return
        self.state, self.error = "running", None
        _LOG.info("HomeKit bridge %r on port %d: %d device(s)", self.config.name,
                  self.config.port, len(self._shown))

    async def _stop_driver(self) -> None:
        driver = self._driver
        self._shown = {}
        if driver is None:
            return
        done = False
        try:
            await driver.async_stop()
            done = True
        except Exception:  # it had not finished starting: stop what did start
            with contextlib.suppress(Exception):
                if driver.http_server.server is not None:
                    driver.http_server.async_stop()
            done = True
        finally:  # cancelled half-way, it stays here so that `stop` finishes the job
            if done and self._driver is driver:
                self._driver = None
        await driver.advertiser.settle()

    def _accessory(self, driver: Any, device: Device, p: Plan, aid: int) -> Any:
        import pyhap.const
        from pyhap.accessory import Accessory

        acc = Accessory(driver, device.name[:64] or device.id, aid=aid)
        acc.category = getattr(pyhap.const, p.category)
        shown = _Shown(device.id, p)
        services: dict[str, Any] = {}
        for link in p.links:
            service = services.get(link.service)
            if service is None:
                wanted = [lk.char for lk in p.links if lk.service == link.service]
                service = services[link.service] = acc.add_preload_service(
                    link.service, chars=wanted)
            char = service.configure_char(
                link.char, setter_callback=lambda value, d=device.id, lk=link:
                self._phone_write(d, lk, value))
            shown.chars[link.attribute] = char
            shown.links[link.attribute] = link
            self._push(char, link, self._states.value(device.id, link.attribute))
        if p.buttons:
            button = acc.add_preload_service("StatelessProgrammableSwitch")
            shown.button = button.get_characteristic("ProgrammableSwitchEvent")
        self._shown[device.id] = shown
        return acc

    # -- both directions -------------------------------------------------------------------

    def _screen_writes(self, driver: Any, chars_query: dict[str, Any]
                       ) -> tuple[list[dict[str, Any]], dict[str, Any], list[tuple[int, int]]]:
        """Split a phone's writes (HAP-python's query) into the refused ones' answers (a
        malformed, out-of-range or valid-values-outside value; a read-only characteristic)
        and the query HAP-python carries out, with the (aid, iid) it will write."""
        from pyhap.const import (
            HAP_REPR_AID,
            HAP_REPR_CHARS,
            HAP_REPR_IID,
            HAP_REPR_STATUS,
            HAP_REPR_VALUE,
        )

        queries = chars_query.get(HAP_REPR_CHARS)
        if not isinstance(queries, list) or driver.accessory is None:
            return [], chars_query, []
        refused: list[dict[str, Any]] = []
        kept: list[Any] = []
        accepted: list[tuple[int, int]] = []
        for query in queries:
            if not isinstance(query, dict):
                kept.append(query)  # HAP-python's to answer
                continue
            aid, iid, value = (query.get(HAP_REPR_AID), query.get(HAP_REPR_IID),
                               query.get(HAP_REPR_VALUE))
            if type(aid) is not int or type(iid) is not int or value is None:
                kept.append(query)
                continue
            char = driver.accessory.get_characteristic(aid, iid)
            problem = None if char is None else _phone_value_problem(char, value)
            if char is None or problem is None:
                kept.append(query)
                if char is not None:
                    accepted.append((aid, iid))
                continue
            status, cause = problem
            self._refused_once(aid, char.display_name, cause, value)
            refused.append({HAP_REPR_AID: aid, HAP_REPR_IID: iid, HAP_REPR_STATUS: status})
            rest = {k: v for k, v in query.items() if k != HAP_REPR_VALUE}
            if set(rest) - {HAP_REPR_AID, HAP_REPR_IID}:  # a subscription with it stays
                kept.append(rest)
        return refused, {**chars_query, HAP_REPR_CHARS: kept}, accepted

    def _refused_once(self, aid: int, char: str, cause: str, value: Any) -> None:
        """A phone's refused value: logged once per (device, characteristic, cause)."""
        device_id = next((d for d, (a, _) in self._rows.items() if a == aid),
                         "the bridge" if aid == 1 else f"aid {aid}")
        self._log_once((device_id, char, cause), "HomeKit: a phone wrote %.40r to %s %s: "
                       "%s; refused (repeats are logged at debug level)",
                       value, device_id, char, cause)

    def _log_once(self, key: tuple[str, ...], message: str, *args: Any) -> None:
        if key in self._logged:
            _LOG.debug(message, *args)
            return
        self._logged.add(key)
        _LOG.warning(message, *args)

    def _phone_write(self, device_id: str, link: Link, value: Any) -> None:
        """A paired phone set a characteristic (`_screen_writes` already checked the value):
        the hub command runs under the bridge's principal; a refusal reverts the value."""
        self._tasks.spawn(self._send(device_id, link, value), f"homekit-write-{device_id}")

    async def _send(self, device_id: str, link: Link, value: Any) -> None:
        self.phone_writes += 1
        device = self._devices.find(device_id)
        outcome: str = "ok"
        command, params = "", dict[str, Any]()
        try:
            if device is None or device.restricted or link.command is None:
                raise Conflict(f"{device_id} cannot be changed from Apple Home")
            command, params = link.command(value)
            await self._commands.authorize_and_send(PRINCIPAL, device_id, command, params)
        except HubError as exc:
            outcome = f"{type(exc).__name__}: {exc}"
            self._log_once((device_id, link.attribute, type(exc).__name__),
                           "HomeKit write to %s.%s refused: %s (repeats are logged at "
                           "debug level)", device_id, link.attribute, outcome)
            shown = self._shown.get(device_id)
            if shown is not None and link.attribute in shown.chars:
                self._push(shown.chars[link.attribute], link,
                           self._states.value(device_id, link.attribute))
        await self._audit.record(ACTOR, "device.command", device_id, {
            "command": command, "params": params, "via": "homekit", "outcome": outcome})

    def _on_state(self, event: StateChanged) -> None:
        shown = self._shown.get(event.device_id)
        if shown is None or event.attribute not in shown.chars:
            return
        # checked now: a device just restricted, or an attribute just hidden, is still in
        # the bridge until the rebuild (REBUILD_DELAY), but nothing new of it is sent
        device = self._devices.find(event.device_id)
        if device is None or device.restricted or \
                not device.scope.allows_attribute(event.attribute):
            return
        self._push(shown.chars[event.attribute], shown.links[event.attribute], event.new)

    def _on_event(self, event: DeviceEvent) -> None:
        shown = self._shown.get(event.device_id)
        if shown is None or shown.button is None or event.event_type not in shown.plan.buttons:
            return
        device = self._devices.find(event.device_id)
        if device is None or device.restricted or not device.scope.allows_event(
                event.event_type):
            return
        shown.button.set_value(press_value(event.data))

    async def _forget(self, device: Device) -> None:
        """A device is deleted or erased: it leaves the bridge (and its row) for good."""
        await self._remove_row(device.id)

    def _on_registry(self, event: DeviceRegistryChanged) -> None:
        if event.device_id not in self._rows:
            return
        device = self._devices.find(event.device_id)
        if device is None:  # removed: `_forget` took care of it
            return
        shown = self._shown.get(device.id)
        now = None if device.restricted else plan(device)
        if (shown.plan.signature if shown else None) != (now.signature if now else None):
            self._schedule_rebuild()

    @staticmethod
    def _push(char: Any, link: Link, value: Any) -> None:
        if value is None:
            return
        try:
            char.set_value(link.to_hap(value))
        except (ValueError, TypeError) as exc:
            _LOG.debug("HomeKit: %s=%r not shown: %s", link.attribute, value, exc)

    # -- persistence -----------------------------------------------------------------------

    def _snapshot(self, driver: Any) -> None:
        """HAP-python's state changed (a phone paired or unpaired): save it to the vault."""
        from pyhap.encoder import AccessoryEncoder

        buf = io.StringIO()
        AccessoryEncoder.persist(buf, driver.state)
        assert self._state is not None
        self._state = {**self._state, "hap": buf.getvalue(),
                       "paired": bool(driver.state.paired_clients)}
        self._dirty = True
        if self._saving is None or self._saving.done():
            self._saving = asyncio.get_running_loop().create_task(self._save())

    async def _save(self) -> None:
        while self._dirty:
            self._dirty = False
            assert self._state is not None
            try:
                await self._vault.put(VAULT_KIND, VAULT_NAME, dict(self._state))
            except Exception:
                _LOG.exception("HomeKit bridge: saving its pairing state failed")

    async def _add_row(self, device_id: str, source: str) -> None:
        aid = max([FIRST_AID - 1, *(a for a, _ in self._rows.values())]) + 1
        await self._db.write(
            "INSERT INTO homekit_bridge(device_id, aid, source, added_at) VALUES(?,?,?,?)",
            (device_id, aid, source, self._clock.time()))
        self._rows[device_id] = (aid, source)

    async def _remove_row(self, device_id: str) -> None:
        if self._rows.pop(device_id, None) is None:
            return
        await self._db.write("DELETE FROM homekit_bridge WHERE device_id = ?", (device_id,))
        self._schedule_rebuild()

    def _schedule_rebuild(self) -> None:
        if self.state not in ("running", "failed") or self._rebuild is not None:
            return
        loop = asyncio.get_running_loop()
        self._rebuild = loop.call_later(REBUILD_DELAY, lambda: self._tasks.spawn(
            self._rebuild_now(), "homekit-rebuild"))

    async def _rebuild_now(self) -> None:
        self._rebuild = None
        async with self._lock:
            zc = await self._zeroconf(10.0)
            await self._stop_driver()
            if zc is not None:
                await self._start_driver(zc)


class _SharedZeroconf:
    """The hub's AsyncZeroconf for HAP-python, which closes its advertiser when it stops:
    here that only withdraws the bridge's service, the hub's zeroconf stays open."""

    def __init__(self, azc: Any) -> None:
        self._azc = azc
        self.zeroconf = azc.zeroconf
        self.updating: set[asyncio.Task[Any]] = set()  # HAP-python starts these unowned

    async def settle(self) -> None:
        """Wait for announcements HAP-python started in the background (pairing changes)."""
        if self.updating:
            await asyncio.gather(*self.updating, return_exceptions=True)

    # zeroconf answers with the task that announces; waited for here, so that nothing is
    # left announcing once the bridge has stopped

    async def async_register_service(self, info: Any, **kw: Any) -> Any:
        return await (await self._azc.async_register_service(info, **kw))

    async def async_update_service(self, info: Any) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self.updating.add(task)
            task.add_done_callback(self.updating.discard)
        return await (await self._azc.async_update_service(info))

    async def async_unregister_service(self, info: Any) -> Any:
        return await (await self._azc.async_unregister_service(info))

    async def async_close(self) -> None:
        return None


def _phone_value_problem(char: Any, value: Any) -> tuple[int, str] | None:
    """Why a phone's value for `char` is refused, as (HAP status, cause); None if it is fine.
    HAP-python alone would coerce "x" to True, clamp 250 to 100, and answer a value outside
    the valid values with a logged traceback."""
    from pyhap.const import HAP_PERMISSION_WRITE, HAP_SERVER_STATUS

    props = char.properties
    if HAP_PERMISSION_WRITE not in props.get("Permissions", ()):
        return HAP_SERVER_STATUS.READ_ONLY_CHARACTERISTIC, "read-only"
    fmt = props.get("Format")
    invalid = HAP_SERVER_STATUS.INVALID_VALUE_IN_REQUEST
    if fmt == "bool":
        if not (isinstance(value, bool) or (type(value) is int and value in (0, 1))):
            return invalid, "not a boolean"
    elif fmt in ("uint8", "uint16", "uint32", "uint64", "int", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            return invalid, "not a number"
        lo, hi = props.get("minValue"), props.get("maxValue")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return invalid, f"outside [{lo}, {hi}]"
        valid = props.get("ValidValues")
        if valid and value not in valid.values():
            return invalid, "not one of its valid values"
    elif fmt == "string" and not isinstance(value, str):
        return invalid, "not a string"
    return None


def _merge_answers(answer: dict[str, Any] | None, refused: list[dict[str, Any]],
                   accepted: list[tuple[int, int]]) -> dict[str, Any] | None:
    """HAP-python's answer to the writes it carried out, with the ones refused before it.
    HAP answers 204 when every write succeeded, else 207 with a status for each."""
    if not refused:
        return answer
    from pyhap.const import HAP_REPR_AID, HAP_REPR_CHARS, HAP_REPR_IID, HAP_REPR_STATUS

    done = {(r[HAP_REPR_AID], r[HAP_REPR_IID]) for r in refused}
    if answer is None:  # HAP-python's writes all succeeded: say so for each
        results = [{HAP_REPR_AID: aid, HAP_REPR_IID: iid, HAP_REPR_STATUS: 0}
                   for aid, iid in accepted]
    else:
        results = list(answer.get(HAP_REPR_CHARS, []))
    results = [r for r in results if (r.get(HAP_REPR_AID), r.get(HAP_REPR_IID)) not in done]
    return {HAP_REPR_CHARS: results + refused}


async def paired_phones(vault: Vault) -> int:
    """How many phones are paired with the bridge (for the privacy export: a count, never
    their keys). 0 when the bridge never ran."""
    import json

    try:
        state = await vault.get(VAULT_KIND, VAULT_NAME)
    except NotFound:
        return 0
    hap = json.loads(state.get("hap") or "{}")  # HAP-python's state (AccessoryEncoder)
    return len(hap.get("paired_clients") or {})


def _load_hap() -> Any:
    """Import HAP-python and read its type tables (blocking: run in a thread)."""
    import pyhap.accessory
    import pyhap.accessory_driver
    import pyhap.characteristic
    import pyhap.const
    import pyhap.encoder
    import pyhap.util
    from pyhap.loader import get_loader

    del pyhap
    return get_loader()


def _pincode() -> str:
    """A random setup code HomeKit accepts (not one of the trivial ones)."""
    trivial = {"00000000", "11111111", "22222222", "33333333", "44444444", "55555555",
               "66666666", "77777777", "88888888", "99999999", "12345678", "87654321"}
    while True:
        digits = f"{secrets.randbelow(10**8):08d}"
        if digits not in trivial:
            return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"
