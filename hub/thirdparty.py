"""Every private part of a library the hub touches, in one place.

Each is a documented gap in the library's public API (named below with why we need it).
`PRIVATE_PARTS` lists them; `tests/core/test_thirdparty.py` checks each against the installed
version, so an upgrade that renames one fails a test instead of silently leaking a task or a
D-Bus connection. At run time a missing part is logged once and skipped, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrivatePart:
    module: str  # where it lives
    owner: str  # "" for a module attribute, else the class
    name: str
    instance: bool  # an attribute set in owner.__init__, not on the class
    why: str


PRIVATE_PARTS = (
    PrivatePart("bleak.backends.bluezdbus.manager", "", "_global_instances", False,
                "bleak keeps one BlueZ manager (and its D-Bus connection) per event loop for "
                "the loop's life, with no public close"),
    PrivatePart("bleak.backends.bluezdbus.manager", "BlueZManager", "_bus", True,
                "the manager's D-Bus connection, closed when the hub stops"),
    PrivatePart("bleak.backends.bluezdbus.manager", "BlueZManager", "_bus_watcher_task", True,
                "cancelled first, so a disconnect we ask for is not logged as a loss"),
    PrivatePart("improv_ble_client.client", "ImprovBLEClient", "_execute_disconnect", False,
                "py-improv-ble-client 2.0 has no public disconnect; its idle timer holds the "
                "link 90 s otherwise"),
    PrivatePart("improv_ble_client.client", "ImprovBLEClient", "_cancel_disconnect_timer",
                False, "the idle-disconnect timer outlives the job otherwise"),
    PrivatePart("improv_ble_client.client", "ImprovBLEClient", "_background_tasks", True,
                "its notification tasks outlive the job otherwise"),
    PrivatePart("aiomqtt.client", "Client", "_client_connect", False,
                "aiomqtt connects in an executor thread that does not inherit context "
                "variables; the egress purpose must be set inside it"),
    PrivatePart("aiomqtt.client", "Client", "_connected", True,
                "aiomqtt 2.5 leaves it cancelled (and the socket open) when the connect is "
                "cancelled before CONNACK; its disconnect callback then raises on the loop"),
    PrivatePart("pyhap.accessory_driver", "AccessoryDriver", "_srp_verifier", True,
                "HAP-python 5 hashes B, S and K without their leading zero bytes while Apple's "
                "accessories and aiohomekit pad them: ~1 pair-setup in 85 failed; the bridge "
                "sets a padded verifier"),
    PrivatePart("pyhap.hsrp", "Server", "_padN", False, "the padded SRP verifier pads with it"),
    PrivatePart("pyhap.hsrp", "Server", "_get_M", False, "recomputed from the padded S"),
    PrivatePart("pyhap.hsrp", "Server", "_get_HAMK", False, "recomputed from the padded S"),
    PrivatePart("aiomqtt.client", "Client", "_lock", True,
                "the reusability lock, released after a cancelled connect"),
    PrivatePart("aiohomekit.protocol", "", "SrpClient", False,
                "the pair-setup's SRP client, looked at after a refused proof to tell an "
                "unpadding accessory (HAP-python) from a wrong setup code"),
)


def missing_parts(parts: tuple[PrivatePart, ...] = PRIVATE_PARTS) -> list[str]:
    """The listed parts the installed libraries no longer have (empty when all is well).

    The core's list by default; an integration's own `thirdparty.py` lists its parts too."""
    import importlib
    import inspect

    missing = []
    for part in parts:
        where = f"{part.module}.{part.owner + '.' if part.owner else ''}{part.name}"
        try:
            module = importlib.import_module(part.module)
        except ImportError:
            missing.append(f"{where}: module not importable")
            continue
        owner = getattr(module, part.owner, None) if part.owner else module
        if owner is None:
            missing.append(f"{where}: no {part.owner}")
        elif part.instance:
            cls: Any = owner  # a class of the library's, set in its __init__
            if f"self.{part.name}" not in inspect.getsource(cls.__init__):
                missing.append(f"{where}: no longer set in __init__")
        elif not hasattr(owner, part.name):
            missing.append(f"{where}: gone")
    return missing


async def release_bleak_manager() -> None:
    """Close bleak's per-event-loop BlueZ connection (bleak keeps one for the loop's life).

    The hub calls this when it stops so nothing of bleak outlives it; bleak opens a fresh
    one if BLE is used again on the same loop."""
    bluez_manager = sys.modules.get("bleak.backends.bluezdbus.manager")
    if bluez_manager is None:  # bleak never scanned here (no adapter): nothing to release
        return
    instances = getattr(bluez_manager, "_global_instances", None)
    if not isinstance(instances, dict):
        _changed("bleak", "_global_instances", "its D-Bus connection stays open until exit")
        return
    manager = instances.pop(asyncio.get_running_loop(), None)
    if manager is None:
        return
    watcher = getattr(manager, "_bus_watcher_task", None)
    if watcher is not None and not watcher.done():
        watcher.cancel()  # a disconnect we ask for is not a loss worth bleak's warning
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
    bus = getattr(manager, "_bus", None)
    if bus is not None:
        with contextlib.suppress(Exception):
            bus.disconnect()  # its disconnect future went with the watcher


async def drop_improv_client(client: Any) -> None:
    """Disconnect an ImprovBLEClient now and cancel its idle timer and background tasks."""
    from improv_ble_client.models import DisconnectReason

    disconnect = getattr(client, "_execute_disconnect", None)
    if disconnect is None:
        _changed("py-improv-ble-client", "_execute_disconnect", "the link idles for 90 s")
    else:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(disconnect(DisconnectReason.TIMEOUT), 5)
    cancel_timer = getattr(client, "_cancel_disconnect_timer", None)
    if cancel_timer is None:
        _changed("py-improv-ble-client", "_cancel_disconnect_timer", "a timer outlives a job")
    else:
        with contextlib.suppress(Exception):
            cancel_timer()
    for task in list(getattr(client, "_background_tasks", ())):
        task.cancel()


Purpose = Callable[[], AbstractContextManager[object]]


def _abandon_connect(client: Any) -> None:
    """Undo a connect cancelled before the broker's CONNACK (aiomqtt 2.5 does not).

    aiomqtt leaves its `_connected` future cancelled and the socket open; when the broker later
    answers or hangs up, its disconnect callback calls `.exception()` on that future and raises
    CancelledError on the loop. A fresh future makes the callbacks return early; disconnecting
    closes the socket (paho's socket-close callback drops the loop's reader)."""
    connected = getattr(client, "_connected", None)
    if isinstance(connected, asyncio.Future) and connected.cancelled():
        client._connected = asyncio.get_running_loop().create_future()
    with contextlib.suppress(Exception):
        client._client.disconnect()
    lock = getattr(client, "_lock", None)
    if isinstance(lock, asyncio.Lock) and lock.locked():
        lock.release()


@functools.cache
def mqtt_client_class() -> Any:
    """aiomqtt.Client whose threaded connect runs under `client.purpose()` (a context manager
    factory: the egress guard's purpose)."""
    import aiomqtt

    class _Client(aiomqtt.Client):
        purpose: Purpose = contextlib.nullcontext

        def _client_connect(self) -> None:
            with self.purpose():
                super()._client_connect()

        async def __aenter__(self) -> Any:
            try:
                return await super().__aenter__()
            except asyncio.CancelledError:
                _abandon_connect(self)
                raise

    if not hasattr(aiomqtt.Client, "_client_connect"):
        _changed("aiomqtt", "Client._client_connect",
                 "cloud connects are not tagged with their egress purpose")
    return _Client


@functools.cache
def _changed(library: str, name: str, consequence: str) -> None:
    _LOG.warning("%s changed: %s is gone; %s (tests/core/test_thirdparty.py says so too)",
                 library, name, consequence)


def install_padded_srp(driver: Any) -> None:
    """Give a HAP-python AccessoryDriver an SRP verifier that pads as HomeKit peers do.

    HAP-python 5.2 writes B, S and K as minimal big-endian integers; iOS, Apple's accessory
    kit and aiohomekit (its PR #150) use them at full width (B and S 384 bytes, K 64). Each has
    a leading zero byte 1 time in 256, and then the proofs differ: ~1.2 % of pair-setups end
    with "authentication error" at M4 although the code was right. Called from the driver's
    `setup_srp_verifier` (at each M1)."""
    import hashlib

    from pyhap.params import get_srp_context

    driver._srp_verifier = padded_srp_server_class()(
        get_srp_context(3072, hashlib.sha512, 16), b"Pair-Setup", driver.state.pincode)


class _Wide(int):
    """An int that `pyhap.util.long_to_bytes` writes at a fixed width (leading zeros kept)."""

    width: int

    def __new__(cls, value: int, width: int) -> _Wide:
        obj = super().__new__(cls, value)
        obj.width = width
        return obj

    def bit_length(self) -> int:
        return self.width * 8


@functools.cache
def padded_srp_server_class() -> Any:
    """pyhap.hsrp.Server with B, S and K at full width (see `install_padded_srp`)."""
    from pyhap.hsrp import Server
    from pyhap.util import long_to_bytes

    class PaddedServer(Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.Bb = self._padN(long_to_bytes(self.B))

        def get_challenge(self) -> tuple[bytes, Any]:
            return self.s, _Wide(self.B, self.N_len // 8)  # sent padded in M2

        def set_A(self, bytes_A: bytes) -> None:
            super().set_A(bytes_A)  # checks A, computes S
            self.Sb = self._padN(long_to_bytes(self.S))
            self.Kb = self._digest(self.Sb)
            self.K = _Wide(int.from_bytes(self.Kb, "big"), len(self.Kb))
            self.M = self._get_M()
            self.HAMK = self._get_HAMK()

    return PaddedServer


# -- aiohomekit against accessories that do not pad (HAP-python 5) ---------------------------

_SRP_CLIENTS: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "uone_srp_clients", default=None)
SRP_WIDTH = 384  # bytes of B and S (3072-bit group); K is a 64-byte SHA-512


class SrpWatch:
    """What `watching_srp` saw of aiohomekit's pair-setup exchanges."""

    def __init__(self, watching: bool) -> None:
        self.watching = watching
        self.clients: list[Any] = []

    def could_be_padding(self) -> bool:
        """After a refused proof: could the last exchange have been refused for padding
        (`srp_padding_could_matter`)? True when it cannot be told (nothing seen)."""
        return not self.watching or not self.clients or srp_padding_could_matter(
            self.clients[-1])


@contextlib.contextmanager
def watching_srp() -> Iterator[SrpWatch]:
    """Watch the SRP clients aiohomekit creates for pair-setup inside the block (in this
    task only), to tell afterwards a wrong setup code from an accessory that does not pad."""
    watch = SrpWatch(_watch_srp_clients())
    if not watch.watching:
        yield watch
        return
    token = _SRP_CLIENTS.set(watch.clients)
    try:
        yield watch
    finally:
        _SRP_CLIENTS.reset(token)


@functools.cache
def _watch_srp_clients() -> bool:
    """aiohomekit.protocol.SrpClient, which records itself where `watching_srp` asks (and
    behaves exactly as before everywhere else)."""
    import aiohomekit.protocol as protocol

    base = getattr(protocol, "SrpClient", None)
    if not isinstance(base, type):
        _changed("aiohomekit", "protocol.SrpClient",
                 "a refused setup code is always tried twice")
        return False

    class WatchedSrpClient(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            seen = _SRP_CLIENTS.get()
            if seen is not None:
                seen.append(self)

    setattr(protocol, "SrpClient", WatchedSrpClient)  # noqa: B010 - the module global
    return True


def srp_padding_could_matter(client: Any) -> bool:
    """After an accessory refused aiohomekit's SRP proof: could the refusal be the padding
    mismatch (see `install_padded_srp`) rather than a wrong setup code?

    aiohomekit hashes B as received, S padded to 384 bytes and K as 64 bytes; an accessory
    that strips leading zero bytes (stock HAP-python) hashes the same bytes unless B was
    sent short or S or K has a leading zero byte. With none of these, both sides hashed
    identical values, so the proofs differ only because the codes differ: a wrong code.
    With a right code this is exact; with a wrong one it says "could" ~3 times in 256."""
    try:
        if len(client.B_b) < SRP_WIDTH:
            return True
        if client.get_shared_secret() < 1 << (8 * (SRP_WIDTH - 1)):
            return True
        return bool(client.get_session_key_bytes()[0] == 0)
    except Exception as exc:  # not the client we know: assume it could
        _LOG.debug("SRP client not understood (%s): assuming padding could matter", exc)
        return True
