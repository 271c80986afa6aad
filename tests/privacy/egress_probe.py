"""Run a real hub (core + HTTP API) with every socket operation of the process recorded.

Usage: python egress_probe.py CONFIG RECORD_FILE READY_FILE
An audit hook installed before the hub is imported writes one JSON line per socket connect,
sendto, bind and name lookup (with the outcome of refused connects), so the test sees every
destination the process tried, not only those still open when it looks. After start-up the
probe runs a workload through the hub and, as a misbehaving outbound path would, tries raw
connections to public addresses; then it waits for SIGTERM.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

_LOCK = threading.Lock()
_OUT = open(sys.argv[2], "a", buffering=1)


def _record(event: str, args: tuple) -> None:
    if event not in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind",
                     "socket.getaddrinfo"):
        return
    try:
        if event == "socket.getaddrinfo":
            entry = {"event": event, "host": str(args[0])}
        else:
            sock, address = args[0], args[1]
            entry = {"event": event, "family": int(sock.family),
                     "address": list(address) if isinstance(address, tuple) else str(address)}
    except Exception as exc:  # never break the hub because of the recorder
        entry = {"event": event, "error": repr(exc)}
    with _LOCK:
        _OUT.write(json.dumps(entry) + "\n")


sys.addaudithook(_record)  # first hook: sees every attempt, including those the guard refuses


async def _main(config_path: str, ready_path: str) -> None:
    import asyncio
    import signal

    import aiohttp

    from hub import egress
    from hub.api.server import ApiServer
    from hub.auth.principal import Principal, Role
    from hub.config import load_config
    from hub.errors import EgressDenied
    from hub.hub import Hub

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with Hub(load_config(config_path)) as hub, ApiServer(hub) as api:
        results: dict[str, object] = {"port": api.port}
        # workload: device commands, state changes, events, consent, retention, API calls
        for _ in range(20):
            await hub.integrations.command("virtual.lamp", "toggle", {})
            await hub.integrations.command("virtual.button", "press", {})
            await hub.integrations.command("virtual.temp", "set", {"value": 21.5})
        await hub.privacy.set_consent("diagnostics", True, "probe")
        await hub.privacy.retention.run_once()
        owner = Principal("probe", "probe", Role.OWNER)
        export = Path(ready_path).with_name("probe-export.zip")
        results["exported_rows"] = (await hub.privacy.export_file(owner, export)).rows
        backup = await hub.privacy.create_backup("probe backup passphrase", owner)
        backup.unlink()
        await hub.privacy.erase_device("virtual.motion", owner)
        await hub.privacy.verify_audit()
        async with aiohttp.ClientSession(
            connector=egress.guarded_connector(hub.privacy.egress)
        ) as session:
            for _ in range(5):
                async with session.get(f"http://127.0.0.1:{api.port}/api/health") as r:
                    await r.read()
            # a public destination through the guarded HTTP client: refused, no socket
            try:
                async with session.get("http://203.0.113.10/"):
                    results["http_public"] = "connected"
            except EgressDenied:
                results["http_public"] = "refused"
        # an outbound path that forgot the guard (an integration, a library): the backstop
        try:
            await asyncio.wait_for(asyncio.open_connection("198.51.100.20", 443), 5)
            results["raw_public"] = "connected"
        except EgressDenied:
            results["raw_public"] = "refused"
        except OSError as exc:
            results["raw_public"] = f"oserror {exc}"
        results["denied"] = hub.privacy.egress.denied
        await asyncio.sleep(0.2)  # let the refusals reach the audit log
        audit = getattr(hub, "audit", None)
        if audit is not None:
            rows = await hub.db.fetchall("SELECT target FROM audit WHERE action = ?",
                                         ("egress.refused",))
            results["audited"] = sorted(r["target"] for r in rows)
        Path(ready_path).write_text(json.dumps(results))  # noqa: ASYNC240 - tiny, once
        await stop.wait()


if __name__ == "__main__":
    import asyncio

    asyncio.run(_main(sys.argv[1], sys.argv[3]))
