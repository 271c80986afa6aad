"""An Improv Wi-Fi provisioning job (ESPHome, WLED and others), through py-improv-ble-client.

Improv sends the password in clear over BLE; its only protection is the "press the button"
authorization. The job says so (`encrypted: false` and a warning), asks for the button
press when the device wants it (waiting at most `provisioning.authorization_timeout`),
reports every Improv error code as a clear failure and keeps the redirect URL the device
returns. Improv devices cannot prove who made them: attestation is `unverified`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from hub.provisioning.evidence import UNVERIFIED
from hub.provisioning.jobs import Job, JobFailed
from hub.thirdparty import drop_improv_client

if TYPE_CHECKING:
    from hub.provisioning.jobs import JobHost

# py-improv-ble-client logs the SSID and password at DEBUG ("provision ssid: %s, pw: %s",
# "TX: ... password:<hex>"), and bleak logs every written value at DEBUG: keep both quieter
# than DEBUG whatever the hub's log level, so the password never reaches a log.
for _name in ("improv_ble_client", "bleak.backends.bluezdbus.client"):
    logging.getLogger(_name).setLevel(logging.INFO)

PRESS_BUTTON = ("Press the button on the device to allow it to receive the Wi-Fi "
                "credentials (Improv authorization).")

# Improv error code -> (job error code, message)
IMPROV_ERRORS: dict[int, tuple[str, str]] = {
    1: ("improv_invalid_rpc", "the device could not parse the request (invalid RPC packet)"),
    2: ("improv_unknown_command", "the device does not know the Wi-Fi settings command"),
    3: ("wifi_refused", "the device could not connect to the Wi-Fi network: check the "
        "password in the vault and that the network is in range"),
    4: ("not_authorized", "the device refused: it was not authorized; press its button and "
        "try again"),
    5: ("improv_bad_hostname", "the device rejected the hostname"),
    0xFF: ("improv_unknown_error", "the device reported an unknown error"),
}


async def run_improv(service: JobHost, job: Job) -> None:
    from improv_ble_client import ImprovBLEClient, State
    from improv_ble_client import errors as improv_errors

    cfg = service.config
    job.attestation = UNVERIFIED
    service.step(job, "connecting")
    device = await _find(service, job.target.address, cfg.ble_timeout)
    client = ImprovBLEClient(device)
    try:
        try:
            needs = await asyncio.wait_for(client.need_authorization(), cfg.ble_timeout)
            if needs:
                service.step(job, "authorization_required", PRESS_BUTTON)
                authorized = asyncio.Event()

                def on_state(state: Any) -> None:
                    if state in (State.AUTHORIZED, State.PROVISIONING, State.PROVISIONED):
                        authorized.set()

                unsubscribe = await client.subscribe_state_updates(on_state)
                try:
                    await asyncio.wait_for(authorized.wait(), cfg.authorization_timeout)
                except TimeoutError:
                    raise JobFailed("authorization_timeout", "nobody pressed the device's "
                                    f"button within {cfg.authorization_timeout:.0f} s") \
                        from None
                finally:
                    unsubscribe()
            creds = await service.wifi.credentials(job.ssid)
            service.step(job, "sending_credentials",
                          "sent unencrypted over Bluetooth (Improv)")
            job.credentials_sent = True

            def on_progress(state: Any) -> None:
                if state == State.PROVISIONING:
                    service.step(job, "joining_wifi")

            redirect = await asyncio.wait_for(
                client.provision(creds.ssid, creds.password, on_progress),
                max(cfg.ble_timeout, 60.0))
            del creds
        except improv_errors.ProvisioningFailed as exc:
            code, message = IMPROV_ERRORS.get(int(exc.error), IMPROV_ERRORS[0xFF])
            raise JobFailed(code, f"{message} (Improv error {int(exc.error)})") from None
        except JobFailed:
            raise
        except TimeoutError:
            raise JobFailed("timeout", "the device stopped answering over Bluetooth") from None
        except (improv_errors.ImprovError, improv_errors.CharacteristicMissingError) as exc:
            raise JobFailed("ble_error", "Bluetooth conversation with the Improv device "
                            f"failed: {type(exc).__name__} {exc}") from None
        except Exception as exc:  # bleak errors: the link, the adapter
            raise JobFailed("ble_error", f"Bluetooth link failed: {exc or type(exc).__name__}")\
                from None
        job.redirect_url = redirect
    finally:
        # the client keeps a 90 s idle-disconnect timer; disconnect now and cancel it
        await drop_improv_client(client)


async def _find(service: JobHost, address: str, timeout: float) -> Any:
    from bleak import BleakScanner

    try:
        device = await BleakScanner.find_device_by_address(address, timeout=timeout)
    except Exception as exc:
        raise JobFailed("ble_unavailable", f"Bluetooth is not available: {exc}") from None
    if device is None:
        raise JobFailed("not_found", f"the device {address} was not found over Bluetooth "
                        f"within {timeout:.0f} s; is it powered and near the hub?")
    return device
