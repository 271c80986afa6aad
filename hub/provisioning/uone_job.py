"""A Uone provisioning job: BLE attestation, sealed Wi-Fi credentials, LAN, adoption."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.provisioning.evidence import Evidence
from hub.provisioning.jobs import Job, JobFailed
from hub.provisioning.lan import LanTimeout, wait_for_lan
from hub.provisioning.uone_ble import DeviceRefused, ProtocolError, UoneBleSession, seal_wifi

if TYPE_CHECKING:
    from hub.provisioning.jobs import JobHost

_LOG = logging.getLogger(__name__)


async def run_uone(service: JobHost, job: Job) -> None:
    cfg = service.config
    target = job.target
    service.step(job, "connecting")
    sessions: list[UoneBleSession] = []

    def on_disconnect(_client: Any) -> None:
        if sessions:
            sessions[0].disconnected()

    client = await connect_ble(service, target.address, cfg.ble_timeout, on_disconnect)
    try:
        session = UoneBleSession(client, timeout=cfg.ble_timeout)
        sessions.append(session)
        try:
            await session.start()
            service.step(job, "reading_certificate")
            info = await session.info()
            service.step(job, "attesting")
            nonce = os.urandom(32)
            signature = await session.attest(nonce, service.hub_id)
        except ProtocolError as exc:
            raise JobFailed(exc.code if exc.code != "device_error" else "protocol_error",
                            f"the device did not follow the Uone protocol: {exc}") from None
        except Exception as exc:
            raise JobFailed("ble_error", f"Bluetooth link failed: {_describe(exc)}") from None
        evidence = Evidence(
            chain=info.chain, nonce=nonce, hub_id=service.hub_id, signature=signature,
            advertised_dids=tuple(d for d in (target.did, info.did) if d),
            advertised_macs=tuple(m for m in (target.mac, info.mac) if m),
        )
        attestation = service.verify(evidence)
        job.attestation = attestation
        if not attestation.ok:
            await service.audit(job, "provisioning.attestation_failed",
                                 {"attestation": attestation.to_json()})
            raise JobFailed("attestation_failed",
                            f"the device is not genuine: {attestation.reason}")
        service.step(job, "sending_credentials")
        assert attestation.public_key is not None and attestation.did is not None
        public = serialization.load_der_public_key(attestation.public_key)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        creds = await service.wifi.credentials(job.ssid)
        sealed = seal_wifi(public, nonce, service.hub_id, attestation.did,
                           creds.to_secret_json())
        del creds
        job.credentials_sent = True
        try:
            await session.send_wifi(
                sealed, on_status=lambda s: _wifi_status(service, job, s),
                join_timeout=max(cfg.ble_timeout, 60.0))
        except DeviceRefused as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.forget(), 5)
            raise JobFailed("wifi_refused", str(exc)) from None
        except ProtocolError as exc:
            await _forget_quietly(session)
            code = "connection_lost" if exc.code in ("timeout", "connection_lost") else exc.code
            raise JobFailed(code, f"provisioning was interrupted: {exc}") from None
        except Exception as exc:
            raise JobFailed("connection_lost", "the Bluetooth link dropped while sending "
                            f"the credentials: {_describe(exc)}") from None
        await session.close()
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
    service.step(job, "waiting_for_lan")
    try:
        endpoint = await wait_for_lan(service.discovery, service.bus, attestation.did,
                                      cfg.lan_timeout)
    except LanTimeout as exc:
        raise JobFailed("lan_timeout", str(exc)) from None
    service.step(job, "adopting")
    device_id = await adopt(service, job, endpoint)
    job.device_id = device_id


async def adopt(service: JobHost, job: Job, endpoint: Any) -> str:
    """Hand the device to the Uone integration, which re-attests it over pinned TLS."""
    running = service.integration("uone")
    instance, ctx = running if running is not None else (None, None)
    if instance is None or ctx is None or not hasattr(instance, "adopt"):
        raise JobFailed("integration_not_loaded", "the uone integration is not loaded; add "
                        "`uone: {}` under `integrations:` in the config")
    att = job.attestation
    assert att is not None and att.public_key is not None
    try:
        device = await asyncio.wait_for(instance.adopt(
            ctx, did=att.did, mac=att.mac, host=endpoint.host, port=endpoint.port,
            txt=endpoint.txt, public_key=att.public_key,
            name=job.target.name or f"Uone {att.did}"), service.config.ble_timeout)
    except TimeoutError:
        raise JobFailed("adoption_failed", "the device did not answer on its local API") \
            from None
    except Exception as exc:
        raise JobFailed(getattr(exc, "code", "adoption_failed"),
                        f"adoption failed: {exc}") from None
    await _mark_adopted(service.discovery.registry, job.target.discovery_id, att.did, device.id)
    return device.id


async def _mark_adopted(registry: Any, discovery_id: str, did: str | None,
                        device_id: str) -> None:
    """The discovered entries of this device (BLE and mDNS) now belong to it."""
    for item in list(registry):
        if item.id == discovery_id or (did is not None and item.did == did):
            with contextlib.suppress(Exception):
                await registry.decide(item, "adopted", device_id)


def _wifi_status(service: JobHost, job: Job, state: str) -> None:
    if state == "joining":
        service.step(job, "joining_wifi")


async def _forget_quietly(session: UoneBleSession) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.forget(), 3)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def connect_ble(service: JobHost, address: str, timeout: float,
                      on_disconnect: Any = None) -> Any:
    """Find the device by address and connect; JobFailed if it is not around."""
    from bleak import BleakClient, BleakScanner

    try:
        device = await BleakScanner.find_device_by_address(address, timeout=timeout)
    except Exception as exc:
        raise JobFailed("ble_unavailable", f"Bluetooth is not available: {_describe(exc)}") \
            from None
    if device is None:
        raise JobFailed("not_found", f"the device {address} was not found over Bluetooth "
                        f"within {timeout:.0f} s; is it powered and near the hub?")
    client = BleakClient(device, disconnected_callback=on_disconnect, timeout=timeout)
    try:
        await client.connect()
    except Exception as exc:
        raise JobFailed("ble_error", f"could not connect to {address}: {_describe(exc)}") \
            from None
    return client
