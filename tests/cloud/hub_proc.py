"""A hub in its own process for the kill -9 test: `python -m tests.cloud.hub_proc CONFIG N`.

Consent and secrets come from the test (env UONE_TEST_SECRETS, JSON), as the privacy center
and vault would give them. Waits for the file GO next to the config, then sets virtual.temp to
1000, 1001, ... (N values, fast), then keeps running; prints its outbox depth every 50 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from hub.cloud.sources import CLOUD_SYNC, MemoryConsent, MemorySecrets
from hub.config import load_config
from hub.hub import Hub


async def main(config: str, count: int) -> None:
    hub = Hub(load_config(config))
    hub.cloud.consent = MemoryConsent(CLOUD_SYNC)
    hub.cloud.secrets = MemorySecrets(json.loads(os.environ["UONE_TEST_SECRETS"]))
    go = Path(config).parent / "GO"
    async with hub:
        print(f"hub_id {hub.cloud.outbox.hub_id}", flush=True)
        while count and not go.exists():  # noqa: ASYNC110 (a file from the test)
            await asyncio.sleep(0.01)
        for i in range(count):
            hub.states.set("virtual.temp", {"value": 1000 + i})
            if i % 20 == 19:
                print(f"set {1000 + i}", flush=True)
                await asyncio.sleep(0.005)
        while True:
            print(f"depth {hub.cloud.outbox.depth} connected {int(hub.cloud.connected)}",
                  flush=True)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
