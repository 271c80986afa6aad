"""A Uone device simulator: the device side of PROTOCOL.md, with knobs for faults.

It advertises and serves the provisioning GATT service through a (fake) BlueZ on the D-Bus
system bus at $DBUS_SYSTEM_BUS_ADDRESS, using the fake's `org.bluez.Mock` API
(tests/doubles/bluez_template.py), then joins "Wi-Fi", announces itself on mDNS
(`_uone._tcp`) and serves the local API over TLS with its factory key.

    python -m integrations.uone.simulator --pki-dir /tmp/pki --did uone-0001 \
        --mac a4:c1:38:00:00:01 --lan-host 127.0.0.1 [--fault refuse_password ...]

prints one JSON line per event on stdout (`ready`, `wifi_received`, `joined`, `lan_up`,
`command`, ...). Run it inside a network namespace: it multicasts on `--lan-host`.

Faults: wrong_key (signs with a key other than the certified one), mac_mismatch (the
certificate names another MAC), expired, revoked (the caller lists its serial as revoked;
the simulator prints it), not_yet_valid, refuse_password (the network "refuses" the
password), drop_connection (drops the BLE link after receiving the credentials, before
answering), garbage (answers GET_INFO with bytes that are not the protocol), silent_lan
(joins but never announces itself on mDNS).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from integrations.uone.advert import FLAG_NEEDS_SETUP, FLAG_ON_WIFI, build_ble
from integrations.uone.factory import DeviceIdentity, FactoryPKI, sign_challenge

SERVICE_UUID = "7d3e0001-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
RX_UUID = "7d3e0002-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
TX_UUID = "7d3e0003-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
MANUFACTURER_ID = 0xFFFF
MDNS_TYPE = "_uone._tcp.local."
FAULTS = ("wrong_key", "mac_mismatch", "expired", "not_yet_valid", "revoked",
          "refuse_password", "drop_connection", "garbage", "silent_lan")
WIFI_CONTEXT = b"uone-wifi-v1\0"
_LAST = 0x80


def make_identity(pki: FactoryPKI, did: str, mac: str, faults: set[str]) -> DeviceIdentity:
    """The factory identity for a simulated device, bent the way `faults` ask."""
    now = dt.datetime.now(dt.UTC)
    kw: dict[str, Any] = {}
    if "wrong_key" in faults:  # the certificate is for some other key than the device's
        kw["cert_key"] = ec.generate_private_key(ec.SECP256R1()).public_key()
    if "expired" in faults:
        kw["not_before"] = now - dt.timedelta(days=400)
        kw["not_after"] = now - dt.timedelta(days=1)
    if "not_yet_valid" in faults:
        kw["not_before"] = now + dt.timedelta(days=2)
    cert_mac = "02:00:00:00:00:01" if "mac_mismatch" in faults else mac
    ident = pki.issue(did, cert_mac, **kw)
    ident.mac = mac.lower()
    return ident


@dataclass
class Simulator:
    """One simulated Uone device (a smart plug)."""

    identity: DeviceIdentity
    faults: set[str] = field(default_factory=set)
    lan_host: str = "127.0.0.1"
    model: str = "Uone Plug S1"
    fw: str = "1.0.0"
    join_delay: float = 0.05  # "joining Wi-Fi" (excluded from the benchmark)
    emit: Callable[[dict[str, Any]], None] = lambda event: None
    # what the device holds: tests assert no credential stays on a rejected device
    credentials: dict[str, str] | None = None
    wifi_received: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"on": False, "power": 0.0})
    commands_seen: list[str] = field(default_factory=list)
    lan_port: int | None = None
    _bus: Any = None
    _device_path: str = ""
    _tx_path: str = ""
    _rx_path: str = ""
    _rx_buf: bytearray = field(default_factory=bytearray)
    _rx_next: int = 0
    _nonce: bytes | None = None
    _hub_id: str = ""
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _zc: Any = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def did(self) -> str:
        return self.identity.did

    @property
    def mac(self) -> str:
        """The factory Wi-Fi MAC (in the certificate, the advertisement and the TXT)."""
        return self.identity.mac

    @property
    def ble_address(self) -> str:
        """The BLE address: Wi-Fi MAC + 2, as on an ESP32 (PROTOCOL.md part A)."""
        raw = bytearray.fromhex(self.mac.replace(":", ""))
        raw[-1] = (raw[-1] + 2) & 0xFF
        return ":".join(f"{b:02X}" for b in raw)

    # -- BLE --------------------------------------------------------------------------------

    async def start_ble(self, adapter: str = "hci0", bus_address: str | None = None) -> None:
        """Appear on the fake BlueZ: LE device, advertisement, GATT service."""
        from dbus_fast import BusType
        from dbus_fast.aio import MessageBus

        address = bus_address or os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
        self._bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
        self._bus.add_message_handler(self._on_message)
        name = "Uone-" + self.did[-4:]
        self._device_path = await self._mock("AddLEDevice", "sss", adapter, self.ble_address,
                                             name)
        await self.advertise(FLAG_NEEDS_SETUP)
        svc = await self._mock("AddGattService", "os", self._device_path, SERVICE_UUID)
        self._rx_path = await self._mock("AddGattCharacteristic", "osasay", svc, RX_UUID,
                                         ["write"], b"")
        self._tx_path = await self._mock("AddGattCharacteristic", "osasay", svc, TX_UUID,
                                         ["notify"], b"")
        await self._add_match(f"type='signal',interface='org.freedesktop.DBus.Mock',"
                              f"member='MethodCalled',path='{self._rx_path}'")
        self.emit({"event": "ready", "did": self.did, "mac": self.mac,
                   "serial": f"{self.identity.cert.serial_number:x}"})

    async def advertise(self, flags: int) -> None:
        """Set the BLE advertisement (PROTOCOL.md part A) with these flags."""
        from dbus_fast import Variant

        await self._call(self._device_path, "org.freedesktop.DBus.Mock", "UpdateProperties",
                         "sa{sv}", ["org.bluez.Device1", {
                             "RSSI": Variant("n", -48),
                             "ManufacturerData": Variant("a{qv}", {
                                 MANUFACTURER_ID: Variant("ay", build_ble(self.did, self.mac,
                                                                          flags))}),
                             "UUIDs": Variant("as", [SERVICE_UUID]),
                         }])

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.stop_lan()
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None
        if self._tmp is not None:
            await asyncio.to_thread(self._tmp.cleanup)
            self._tmp = None

    def _on_message(self, msg: Any) -> None:
        if msg.member != "MethodCalled" or msg.path != self._rx_path:
            return
        name, args = msg.body
        if name != "WriteValue":
            return
        value = args[0].value if hasattr(args[0], "value") else args[0]
        self._spawn(self._on_fragment(bytes(value)))

    async def _on_fragment(self, value: bytes) -> None:
        if not value or value[0] & 0x7F != self._rx_next:
            self._rx_buf.clear()
            self._rx_next = 0
            await self._send(0x7F, {"code": "bad_fragment", "message": "fragment out of order"})
            return
        self._rx_buf += value[1:]
        self._rx_next = (self._rx_next + 1) & 0x7F
        if not value[0] & _LAST:
            return
        data = bytes(self._rx_buf)
        self._rx_buf.clear()
        self._rx_next = 0
        try:
            body = json.loads(data[1:])
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            await self._send(0x7F, {"code": "bad_request", "message": "body is not JSON"})
            return
        await self._handle(data[0], body)

    async def _handle(self, msg_type: int, body: dict[str, Any]) -> None:
        if msg_type == 0x01:  # GET_INFO
            if "garbage" in self.faults:
                await self._notify(bytes([_LAST]) + b"\x81\xff\xfe not json")
                return
            await self._send(0x81, {
                "v": 1, "did": self.did, "mac": self.mac, "model": self.model, "fw": self.fw,
                "chain": [base64.b64encode(c).decode() for c in self.identity.chain_der]})
        elif msg_type == 0x02:  # ATTEST
            self._nonce = base64.b64decode(body["nonce"])
            self._hub_id = str(body["hub_id"])
            sig = sign_challenge(self.identity.key, self._nonce, self._hub_id)
            await self._send(0x82, {"sig": base64.b64encode(sig).decode()})
        elif msg_type == 0x03:  # SET_WIFI
            await self._set_wifi(body)
        elif msg_type == 0x04:  # FORGET
            self.credentials = None
            self.emit({"event": "forgotten"})
            await self._send(0x84, {})
        else:
            await self._send(0x7F, {"code": "unknown_type", "message": f"type {msg_type}"})

    async def _set_wifi(self, body: dict[str, Any]) -> None:
        self.wifi_received += 1
        try:
            creds = self._open_sealed(body)
        except Exception:
            await self._send(0x83, {"state": "failed", "error": "decrypt_failed"})
            return
        self.credentials = creds
        self.emit({"event": "wifi_received", "ssid_len": len(creds["ssid"])})
        if "drop_connection" in self.faults:
            # the link drops before the device could answer; it keeps nothing it cannot use
            self.credentials = None
            await self._call(self._device_path, "org.freedesktop.DBus.Mock", "UpdateProperties",
                             "sa{sv}", ["org.bluez.Device1", _connected(False)])
            self.emit({"event": "dropped"})
            return
        await self._send(0x83, {"state": "received"})
        await self._send(0x83, {"state": "joining"})
        await asyncio.sleep(self.join_delay)
        if "refuse_password" in self.faults:
            self.credentials = None  # a device must not keep credentials that do not work
            await self._send(0x83, {"state": "failed", "error": "auth_failed"})
            self.emit({"event": "join_failed"})
            return
        await self.start_lan(announce="silent_lan" not in self.faults)
        await self._send(0x83, {"state": "joined", "ip": self.lan_host})
        await self.advertise(FLAG_ON_WIFI)
        self.emit({"event": "joined", "ip": self.lan_host, "port": self.lan_port})

    def _open_sealed(self, body: dict[str, Any]) -> dict[str, str]:
        assert self._nonce is not None
        epk = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), base64.b64decode(body["epk"]))
        shared = self.identity.key.exchange(ec.ECDH(), epk)
        key = HKDF(hashes.SHA256(), 32, salt=self._nonce,
                   info=WIFI_CONTEXT + self._hub_id.encode() + b"\0" + self.did.encode()
                   ).derive(shared)
        plain = AESGCM(key).decrypt(base64.b64decode(body["iv"]), base64.b64decode(body["ct"]),
                                    WIFI_CONTEXT + self.did.encode())
        return json.loads(plain)

    async def _send(self, msg_type: int, body: dict[str, Any]) -> None:
        data = bytes([msg_type]) + json.dumps(body, separators=(",", ":")).encode()
        chunks = [data[i:i + 19] for i in range(0, len(data), 19)]
        for i, chunk in enumerate(chunks):
            await self._notify(bytes([(i & 0x7F) | (_LAST if i == len(chunks) - 1 else 0)])
                               + chunk)

    async def _notify(self, value: bytes) -> None:
        await self._mock("Notify", "oay", self._tx_path, value)

    async def _mock(self, member: str, signature: str, *body: Any) -> Any:
        out = await self._call("/", "org.bluez.Mock", member, signature, list(body))
        return out[0] if out else None

    async def _call(self, path: str, iface: str, member: str, signature: str,
                    body: list[Any]) -> list[Any]:
        from dbus_fast import Message, MessageType

        reply = await self._bus.call(Message(destination="org.bluez", path=path,
                                             interface=iface, member=member,
                                             signature=signature, body=body))
        if reply is None or reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.body if reply else 'no reply'}")
        return list(reply.body)

    async def _add_match(self, rule: str) -> None:
        from dbus_fast import Message

        await self._bus.call(Message(destination="org.freedesktop.DBus",
                                     path="/org/freedesktop/DBus",
                                     interface="org.freedesktop.DBus", member="AddMatch",
                                     signature="s", body=[rule]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- LAN --------------------------------------------------------------------------------

    async def start_lan(self, port: int = 0, announce: bool = True) -> None:
        """Serve the local API with the factory key and (if `announce`) say so on mDNS."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve, self.lan_host, port, ssl=await asyncio.to_thread(self._tls_context),
            limit=1 << 16)
        self.lan_port = self._server.sockets[0].getsockname()[1]
        if not announce:
            return
        self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only, interfaces=[self.lan_host])
        info = AsyncServiceInfo(
            MDNS_TYPE, f"Uone-{self.did}.{MDNS_TYPE}",
            addresses=[socket.inet_aton(self.lan_host)], port=self.lan_port,
            properties={"did": self.did, "mac": self.mac, "model": self.model, "fw": self.fw,
                        "proto": "1"},
            server=f"uone-{self.did}.local.")
        broadcast = await self._zc.async_register_service(info)
        await broadcast  # the announcements, so nothing is left running at stop
        self.emit({"event": "lan_up", "port": self.lan_port})

    async def stop_lan(self) -> None:
        if self._zc is not None:
            with contextlib.suppress(Exception):
                await self._zc.async_unregister_all_services()  # goodbye packets
            await self._zc.async_close()
            self._zc = None
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def set_state(self, **changes: Any) -> None:
        """Change state locally (a button on the device): pushed to connected hubs."""
        self.state.update(changes)
        line = _line({"type": "state", "state": self.state})
        for w in list(self._writers):
            w.write(line)

    def _tls_context(self) -> ssl.SSLContext:
        self._tmp = self._tmp or tempfile.TemporaryDirectory(prefix="uone-sim-")
        cert, key = Path(self._tmp.name) / "chain.pem", Path(self._tmp.name) / "key.pem"
        if "wrong_key" in self.faults:  # an impostor: a copied chain it has no key for
            cert.write_bytes(_self_signed(self.identity.key))
        else:
            cert.write_bytes(self.identity.chain_pem())
        key.write_bytes(self.identity.key_pem())
        key.chmod(0o600)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(cert, key)
        return ctx

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = json.loads(await reader.readline())
            nonce = base64.b64decode(hello["nonce"])
            sig = sign_challenge(self.identity.key, nonce, str(hello["hub_id"]))
            writer.write(_line({
                "type": "hello", "did": self.did, "mac": self.mac,
                "chain": [base64.b64encode(c).decode() for c in self.identity.chain_der],
                "sig": base64.b64encode(sig).decode(), "state": self.state, "model": self.model,
                "commands": [{"name": "turn_on"}, {"name": "turn_off"}, {"name": "toggle"}],
            }))
            await writer.drain()
            self._writers.add(writer)
            while line := await reader.readline():
                msg = json.loads(line)
                if msg.get("type") == "command":
                    writer.write(_line(self._command(msg)))
                    await writer.drain()
        except (ConnectionError, ValueError, KeyError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _command(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = msg.get("command")
        self.commands_seen.append(str(name))
        self.emit({"event": "command", "command": name})
        if name == "turn_on":
            self.state.update(on=True, power=5.5)
        elif name == "turn_off":
            self.state.update(on=False, power=0.0)
        elif name == "toggle":
            on = not self.state["on"]
            self.state.update(on=on, power=5.5 if on else 0.0)
        else:
            return {"type": "ack", "id": msg.get("id"), "ok": False,
                    "error": f"unknown command {name!r}"}
        return {"type": "ack", "id": msg.get("id"), "ok": True, "state": self.state}


def _self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _connected(value: bool) -> dict[str, Any]:
    from dbus_fast import Variant

    return {"Connected": Variant("b", value), "ServicesResolved": Variant("b", value)}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _load_or_create_pki(directory: Path) -> FactoryPKI:
    """A factory PKI kept in `directory` (root.pem is the hub's trust anchor)."""
    from cryptography import x509

    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / n for n in ("root.pem", "root.key", "pai.pem", "pai.key")]
    if all(f.exists() for f in files):
        root, root_key, pai, pai_key = (f.read_bytes() for f in files)
        return FactoryPKI(
            serialization.load_pem_private_key(root_key, None),  # type: ignore[arg-type]
            x509.load_pem_x509_certificate(root),
            serialization.load_pem_private_key(pai_key, None),  # type: ignore[arg-type]
            x509.load_pem_x509_certificate(pai))
    pki = FactoryPKI.create()
    enc = serialization.Encoding.PEM
    files[0].write_bytes(pki.root.public_bytes(enc))
    files[2].write_bytes(pki.pai.public_bytes(enc))
    for path, key in ((files[1], pki.root_key), (files[3], pki.pai_key)):
        path.write_bytes(key.private_bytes(enc, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
    return pki


async def _main(args: argparse.Namespace) -> int:
    pki = _load_or_create_pki(Path(args.pki_dir))
    faults = set(args.fault or [])
    sim = Simulator(make_identity(pki, args.did, args.mac, faults), faults, args.lan_host,
                    join_delay=args.join_delay,
                    emit=lambda e: print(json.dumps(e), flush=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sim.start_ble(args.adapter)
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m integrations.uone.simulator",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--pki-dir", required=True, help="factory PKI folder (made if missing)")
    p.add_argument("--did", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--adapter", default="hci0")
    p.add_argument("--lan-host", default="127.0.0.1")
    p.add_argument("--join-delay", type=float, default=0.5)
    p.add_argument("--fault", action="append", choices=FAULTS)
    return asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
