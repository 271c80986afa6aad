"""A Uone "device" on mDNS for tests: real zeroconf, driven by JSON lines on stdin.

Run inside the device's network namespace:
  ip netns exec NS python -m tests.discovery.mdns_device 10.77.0.2
Commands (one JSON object per line); each answers one JSON line when done:
  {"op": "register", "name": "Lamp", "type": "_uone._tcp.local.", "port": 8080,
   "txt": {"did": "..."}, "ttl"?: 3}              -> {"ok": true, "name": "Lamp._uone..."}
  {"op": "update", "txt": {...}, "addresses"?: [...]} -> {"ok": true}
  {"op": "unregister"}                            -> {"ok": true}   (goodbye packets)
  {"op": "browse", "type": "_uone-hub._tcp.local.", "timeout": 5}
                                                  -> {"ok": true, "services": [{...}]}
  {"op": "exit"}
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf


async def main(address: str) -> None:
    zc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
    info: AsyncServiceInfo | None = None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            op = cmd["op"]
            out: dict[str, Any] = {"ok": True}
            if op == "register":
                ttl = cmd.get("ttl")  # short record TTLs, to test expiry without goodbye
                info = AsyncServiceInfo(
                    cmd["type"], f"{cmd['name']}.{cmd['type']}", port=cmd["port"],
                    properties=cmd["txt"], server=f"{cmd.get('host', 'uone-dev')}.local.",
                    addresses=[socket.inet_aton(address)],
                    **({"host_ttl": ttl, "other_ttl": ttl} if ttl else {}))
                await (await zc.async_register_service(info))
                out["name"] = info.name
            elif op == "update" and info is not None:
                addresses = ([socket.inet_aton(a) for a in cmd["addresses"]]
                             if "addresses" in cmd else info.addresses)
                info = AsyncServiceInfo(
                    info.type, info.name, port=info.port,
                    properties=cmd.get("txt", info.properties), server=info.server,
                    addresses=addresses)
                await (await zc.async_update_service(info))
            elif op == "unregister" and info is not None:
                await (await zc.async_unregister_service(info))
                info = None
            elif op == "browse":
                out["services"] = await browse(zc, cmd["type"], cmd.get("timeout", 5))
            elif op == "exit":
                break
            print(json.dumps(out), flush=True)
    finally:
        await zc.async_close()


async def browse(zc: AsyncZeroconf, stype: str, within: float) -> list[dict[str, Any]]:
    found: asyncio.Queue[str] = asyncio.Queue()

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        if state_change is ServiceStateChange.Added:
            found.put_nowait(name)

    browser = AsyncServiceBrowser(zc.zeroconf, [stype], handlers=[on_change])
    try:
        name = await asyncio.wait_for(found.get(), within)
        info = AsyncServiceInfo(stype, name)
        await info.async_request(zc.zeroconf, 3000)
        return [{"name": name, "port": info.port,
                 "addresses": info.parsed_addresses(IPVersion.V4Only),
                 "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()}}]
    except TimeoutError:
        return []
    finally:
        await browser.async_cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
