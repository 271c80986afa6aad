"""End-to-end provisioning timing with the simulator (fake BlueZ + mDNS in a private netns).

The time from the provision request to a verified, adopted device, minus the time the
simulator spends pretending to join Wi-Fi (its `join_delay`). Needs root (network
namespace), dbus-daemon and python-dbusmock, like the test suite. Re-executes itself inside
a fresh namespace so nothing multicasts on real interfaces.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOIN_DELAY = 0.2
NS_ENV = "UONE_BENCH_NETNS"


def run_flow_bench(runs: int = 5) -> dict[str, float]:
    if not os.environ.get(NS_ENV):
        return _in_namespace(runs)
    return asyncio.run(_bench(runs))


def _in_namespace(runs: int) -> dict[str, float]:
    ns = f"uone-bench-prov-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "bench.provisioning_flow",
             str(runs)], cwd=root, env={**os.environ, NS_ENV: ns, "PYTHONPATH": str(root)},
            check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    result = {}
    for line in out.splitlines():
        if "\t" in line:
            key, value = line.split("\t")
            result[key] = float(value)
    return result


async def _bench(runs: int) -> dict[str, float]:
    import logging

    import yaml

    from hub.config import load_config
    from hub.hub import Hub
    from integrations.uone.factory import FactoryPKI
    from integrations.uone.simulator import Simulator, make_identity
    from tests.doubles.bluez import running_fake_bluez

    logging.basicConfig(level=logging.ERROR)
    pki = FactoryPKI.create()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "root.pem").write_bytes(pki.root_pem())
        cfg = {
            "data_dir": str(tmp_path / "data"), "log_level": "error",
            "api": {"host": "127.0.0.1", "port": 0},
            "provisioning": {"trust_anchors": [str(tmp_path / "root.pem")]},
            "discovery": {"ble": {"enabled": True},
                          "mdns": {"enabled": True, "interfaces": ["lo"], "advertise": False}},
            "integrations": {"uone": {}},
        }
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
        totals, attest, lan, adopt, join = [], [], [], [], []
        async with running_fake_bluez(tmp_path / "bluez") as fake:
            async with Hub(load_config(tmp_path / "config.yaml")) as hub:
                await hub.provisioning.wifi.put("Bench-Net", "bench-password-1", "wpa2-psk")
                from hub.provisioning.jobs import ProvisionTarget

                for i in range(runs):
                    did = f"uone-{i + 1:016x}"
                    mac = f"24:0a:c4:00:01:{i + 1:02x}"
                    sim = Simulator(make_identity(pki, did, mac, set()), lan_host="127.0.0.1",
                                    join_delay=JOIN_DELAY)
                    await sim.start_ble()
                    try:
                        target = ProvisionTarget(f"ble-{i}", "uone", sim.ble_address, did,
                                                 None, mac)
                        started = time.perf_counter()
                        job = await hub.provisioning.start_job(target, "Bench-Net", "bench")
                        await job.done.wait()
                        elapsed = time.perf_counter() - started
                        assert job.state == "succeeded", job.to_json()
                        totals.append(elapsed - JOIN_DELAY)
                        ts = {h["state"]: h["ts"] for h in job.history}
                        attest.append(ts["sending_credentials"] - ts["connecting"])
                        lan.append(ts["adopting"] - ts["waiting_for_lan"])
                        join.append(ts["waiting_for_lan"] - ts["sending_credentials"]
                                    - JOIN_DELAY)
                        adopt.append(ts["succeeded"] - ts["adopting"])
                    finally:
                        await sim.stop()
                del fake
    return {
        "provision->adopted, median s (excl. Wi-Fi join)": statistics.median(totals),
        "provision->adopted, min s (excl. Wi-Fi join)": min(totals),
        "  BLE connect+read chain+attest, median s": statistics.median(attest),
        "  sealed Wi-Fi sent -> joined (incl. device mDNS probing), median s":
            statistics.median(join),
        "  waiting for mDNS (device announce+probe), median s": statistics.median(lan),
        "  LAN adoption (TLS pin+re-attest+register), median s": statistics.median(adopt),
        "runs": float(runs),
    }


if __name__ == "__main__":
    for key, value in asyncio.run(_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 5)).items():
        print(f"{key}\t{value}")
