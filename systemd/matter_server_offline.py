"""Start python-matter-server 7.0.1 without any of its downloads (the hub's offline promise).

Run by the server's own venv (the hub's package is not installed there), with the server's
own arguments (systemd/uone-matter.service):

    /opt/uone-matter/.venv/bin/python -I /opt/uone-hub/systemd/matter_server_offline.py \
        --storage-path ... --paa-root-cert-dir ...

7.0.1 has no flag to stay offline. At every start it would
- download PAA root certificates from the CSA's DCL and GitHub whenever the PAA directory's
  `.version` is more than 24 h old (and empty the directory first when it has none):
  `matter_server.server.helpers.paa_certificates.fetch_certificates`, called by
  `matter_server.server.server.MatterServer.start` under the name it imported;
- download the vendor list from the DCL: `matter_server.server.vendor_info.VendorInfo.
  _fetch_vendors`;
and, when a client asks for a node's software update, look for it on the DCL:
`matter_server.server.ota.dcl.check_for_update` (the hub never asks; updates kept locally in
the OTA provider directory are still offered).

This replaces those three with no-ops that log one line each ("offline: not fetching ...")
and then runs the server's normal `main`. The PAA roots are the ones the owner imported
(`uone-hub matter import-paa`), vendor names the ones in the server's storage. If the
installed server lacks any of these names (another version), it refuses to start rather
than start online.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger("uone.matter.offline")
SUPPORTED = "7.0.1"


def _patch() -> None:
    from matter_server.server import server as server_module
    from matter_server.server import vendor_info
    from matter_server.server.helpers import paa_certificates
    from matter_server.server.ota import dcl

    if (getattr(server_module, "fetch_certificates", None)
            is not getattr(paa_certificates, "fetch_certificates", object())
            or not hasattr(vendor_info.VendorInfo, "_fetch_vendors")
            or not hasattr(dcl, "check_for_update")):
        raise SystemExit("matter_server_offline: this python-matter-server does not have the "
                         "functions that fetch from the internet where 7.0.1 has them; not "
                         "starting it online (docs/matter.md)")

    async def fetch_certificates(paa_root_cert_dir: Path, *args: Any, **kwargs: Any) -> int:
        LOG.info("offline: not fetching PAA root certificates; using those in %s (imported "
                 "with `uone-hub matter import-paa`)", paa_root_cert_dir)
        return 0

    async def _fetch_vendors(self: Any) -> None:
        LOG.info("offline: not fetching vendor names from the DCL; using those in storage")

    async def check_for_update(logger: Any, vid: int, pid: int, *args: Any,
                               **kwargs: Any) -> None:
        LOG.info("offline: not fetching software updates for vendor %#06x product %#06x "
                 "from the DCL", vid, pid)

    paa_certificates.fetch_certificates = fetch_certificates
    server_module.fetch_certificates = fetch_certificates
    vendor_info.VendorInfo._fetch_vendors = _fetch_vendors
    dcl.check_for_update = check_for_update


def main() -> None:
    from importlib.metadata import version

    installed = version("python-matter-server")
    if installed != SUPPORTED:
        print(f"matter_server_offline: python-matter-server {installed} (written for "
              f"{SUPPORTED}): checking that its fetching functions are where they were",
              file=sys.stderr)
    _patch()
    # the server parses sys.argv when its __main__ module is imported
    from matter_server.server.__main__ import main as server_main

    server_main()


if __name__ == "__main__":
    main()
