"""Real ESPHome firmware (built for Linux) running in a device namespace, published on mDNS.

The host build does not advertise itself, so the device side's python-zeroconf
(tests.discovery.mdns_device) publishes `_esphomelib._tcp` with the TXT record a real ESP32
device sends (ESPHome's mdns_component.cpp: friendly_name, version, config_hash, mac,
platform, board, network), under the node name as host.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.discovery import netns
from tests.esphome import firmware

SERVICE_TYPE = "_esphomelib._tcp.local."


def txt_for(node_friendly: str, mac: str, *, encrypted: bool = False) -> dict[str, str]:
    """The TXT record an ESP32 running ESPHome 2026.6.5 publishes."""
    txt = {"friendly_name": node_friendly, "version": firmware.ESPHOME_VERSION,
           "config_hash": "3f2a9c1d", "mac": mac.replace(":", "").lower(),
           "platform": "ESP32", "board": "esp32dev", "network": "wifi"}
    txt["api_encryption" if encrypted else "api_encryption_supported"] = (
        "Noise_NNpsk0_25519_ChaChaPoly_SHA256")
    return txt


@dataclass
class FirmwareDevice:
    """One firmware process in its namespace, and its mDNS publisher."""

    binary: Path
    lan: netns.Lan
    node: str
    friendly: str
    mac: str
    log: Path
    port: int = 6053
    proc: asyncio.subprocess.Process | None = None
    mdns: netns.MdnsDevice | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        """Run the firmware; return once its API port accepts connections."""
        out = await asyncio.to_thread(open, self.log, "ab")  # the child keeps a copy
        try:
            self.proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", self.lan.dev_ns, str(self.binary),
                stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        finally:
            out.close()
        await self.wait_listening()

    async def wait_listening(self, within: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"firmware {self.node} exited: {self.log.read_text()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection(self.lan.dev_ip, self.port)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                return
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """A power cut: the process dies, the TCP connection with it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    async def publish(self, txt: dict[str, str] | None = None) -> None:
        """Announce `_esphomelib._tcp` as the device would (again after a reboot)."""
        if self.mdns is None:
            self.mdns = await self._stack.enter_async_context(
                netns.mdns_device(self.lan.dev_ns, self.lan.dev_ip))
            reply = await self.mdns.send(op="register", name=self.node, type=SERVICE_TYPE,
                                         port=self.port, host=self.node,
                                         txt=txt or txt_for(self.friendly, self.mac))
        else:
            reply = await self.mdns.send(op="update", txt=txt or txt_for(self.friendly,
                                                                          self.mac))
        assert reply["ok"], reply

    async def close(self) -> None:
        await self.kill()
        await self._stack.aclose()


@contextlib.asynccontextmanager
async def running(binary: Path, node: str, friendly: str, mac: str, log_dir: Path
                  ) -> AsyncIterator[FirmwareDevice]:
    """Firmware `binary` in a fresh device namespace joined to ours, published on mDNS."""
    async with netns.veth_lan() as lan:
        device = FirmwareDevice(binary, lan, node, friendly, mac, log_dir / f"{node}.log")
        try:
            await device.start()
            await device.publish()
            yield device
        finally:
            await device.close()


def skip_reason() -> str | None:
    return netns.unavailable() or firmware.unavailable()

