"""The hub's side of a Uone device's local API (PROTOCOL.md §5): pinned TLS, re-attestation
at every connection, pushed state, acknowledged commands."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import ssl
from collections.abc import Callable
from typing import Any

from hub.facade import Attestation, DeviceUnavailable, Evidence, HubError

MAX_LINE = 1 << 16
HELLO_TIMEOUT = 10.0
COMMAND_TIMEOUT = 10.0


class LanError(HubError):
    """The device's local API could not be used: unreachable, wrong key, not genuine."""

    status = 502
    code = "device_error"

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class LanConnection:
    """One TLS connection to a device, pinned to its attested key."""

    def __init__(self, host: str, port: int, *, pin: bytes, hub_id: str,
                 verify: Callable[[Evidence], Attestation],
                 advertised_did: str | None, advertised_mac: str | None,
                 on_state: Callable[[dict[str, Any]], None],
                 on_closed: Callable[[], None] | None = None) -> None:
        self.host, self.port = host, port
        self._pin = pin
        self._hub_id = hub_id
        self._verify = verify
        self._dids = (advertised_did,) if advertised_did else ()
        self._macs = (advertised_mac,) if advertised_mac else ()
        self._on_state = on_state
        self._on_closed = on_closed
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._task: asyncio.Task[None] | None = None
        self.attestation: Attestation | None = None
        self.hello: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        return self._task is not None and not self._task.done()

    async def open(self) -> Attestation:
        """Connect, check the pin, re-attest. LanError (and closed) on any failure."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # no CA here: the attested key is pinned below
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=ctx, limit=MAX_LINE),
                HELLO_TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise LanError("unreachable", f"cannot reach {self.host}:{self.port}: {exc}") \
                from None
        try:
            return await self._handshake()
        except BaseException:
            await self.close()
            raise

    async def _handshake(self) -> Attestation:
        assert self._writer is not None and self._reader is not None
        # x509 and its friends (~1.5 MiB) load with the first device connection, not at start
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        peer = self._writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        peer_key = x509.load_der_x509_certificate(peer).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if peer_key != self._pin:
            raise LanError("pin_mismatch", "the device's TLS key is not the attested key")
        nonce = os.urandom(32)
        self._send({"type": "hello", "nonce": _b64(nonce), "hub_id": self._hub_id})
        try:
            line = await asyncio.wait_for(self._reader.readline(), HELLO_TIMEOUT)
            hello = json.loads(line)
            chain = tuple(_unb64(c) for c in hello["chain"])
            sig = _unb64(hello["sig"])
        except (TimeoutError, ValueError, KeyError, TypeError, ConnectionError,
                asyncio.LimitOverrunError) as exc:
            raise LanError("protocol_error", f"bad hello from the device: {exc}") from None
        result = self._verify(Evidence(chain, nonce, self._hub_id, sig, self._dids, self._macs))
        if result.ok and result.public_key != self._pin:
            raise LanError("pin_mismatch", "the device attested a key other than its TLS key")
        self.attestation = result
        if not result.ok:
            raise LanError("attestation_failed", f"re-attestation failed: {result.reason}")
        self.hello = hello
        if isinstance(hello.get("state"), dict):
            self._on_state(hello["state"])
        self._task = asyncio.get_running_loop().create_task(self._read_loop(),
                                                            name=f"uone-lan-{self.host}")
        return result

    async def command(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send a command and wait for its ack; returns the device's new state."""
        if not self.connected:
            raise DeviceUnavailable("the device is not connected")
        cid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        self._send({"type": "command", "id": cid, "command": name, "params": params})
        try:
            ack = await asyncio.wait_for(fut, COMMAND_TIMEOUT)
        except TimeoutError:
            raise DeviceUnavailable(f"the device did not acknowledge {name!r} in time") \
                from None
        finally:
            self._pending.pop(cid, None)
        if not ack.get("ok"):
            raise LanError("command_refused", f"the device refused {name!r}: "
                           f"{ack.get('error')}")
        state = ack.get("state")
        return state if isinstance(state, dict) else {}

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 2)
            self._writer = None

    async def wait_closed(self) -> None:
        """Until the connection ends; a cancelled caller stays cancelled."""
        task = self._task
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                raise  # our caller was cancelled, not the connection
        except Exception:  # the read loop ended badly: the connection is over either way
            return

    def _send(self, obj: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while line := await self._reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue  # one bad line is dropped, the connection stays
                if not isinstance(msg, dict):
                    continue
                if msg.get("type") == "state" and isinstance(msg.get("state"), dict):
                    self._on_state(msg["state"])
                elif msg.get("type") == "ack":
                    fut = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                        if isinstance(msg.get("state"), dict):
                            self._on_state(msg["state"])
        except (ConnectionError, ssl.SSLError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(DeviceUnavailable("the device disconnected"))
            if self._on_closed is not None:
                self._on_closed()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


async def fetch_identity(host: str, port: int) -> bytes:
    """The DER certificate a device presents in TLS (trust on first use is NOT implied: the
    caller pins it only after the device attests with the key it certifies)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx), HELLO_TIMEOUT)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise LanError("unreachable", f"no Uone local API at {host}:{port} ({exc or 'timeout'})"
                       ) from None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 2)
    if not der:
        raise LanError("protocol_error", "the device presented no certificate")
    return der
