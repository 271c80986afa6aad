"""Provisioning benchmarks: attestation checks per second, and (with --flow) the time from a
provision request to a verified, adopted device with the simulator.

    python -m bench.provisioning            # attestation only
    python -m bench.provisioning --flow     # also the end-to-end flow (root: netns + fake BlueZ)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from hub.provisioning.attestation import AttestationVerifier, Evidence
from integrations.uone.factory import FactoryPKI, sign_challenge


def bench_attestation(seconds: float = 2.0) -> dict[str, float]:
    pki = FactoryPKI.create()
    ident = pki.issue("uone-bench", "a4:c1:38:00:00:01")
    verifier = AttestationVerifier([pki.root])
    now = dt.datetime.now(dt.UTC)
    samples = []
    for _ in range(64):
        nonce = os.urandom(32)
        samples.append(Evidence(tuple(ident.chain_der), nonce, "hub",
                                sign_challenge(ident.key, nonce, "hub"),
                                ("uone-bench",), ("a4:c1:38:00:00:01",)))
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        result = verifier.verify(samples[count % len(samples)], now)
        assert result.outcome == "verified", result
        count += 1
    elapsed = time.perf_counter() - started
    return {"checks": count, "seconds": elapsed, "per_second": count / elapsed,
            "ms_per_check": elapsed / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--flow", action="store_true", help="also time the end-to-end flow")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    att = bench_attestation(args.seconds)
    width = 66
    print(f"{'measure':<{width}} {'value':>12}")
    print(f"{'attestation checks/s (chain+signature+binding)':<{width}} "
          f"{att['per_second']:>12.0f}")
    print(f"{'ms per attestation check':<{width}} {att['ms_per_check']:>12.3f}")
    if args.flow:
        from bench.provisioning_flow import run_flow_bench

        for name, value in run_flow_bench(args.runs).items():
            print(f"{name:<{width}} {value:>12.3f}")


if __name__ == "__main__":
    main()
