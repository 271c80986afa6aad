"""The Hub: builds the core services in one place and runs them on one AsyncExitStack.

Start order is the dependency order; stop is its exact reverse, and only what started is
undone. The HTTP API is not part of the core: `hub.daemon` puts it on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub import __version__
from hub.audit import SCHEMA as AUDIT_SCHEMA
from hub.audit import AuditLog
from hub.auth.service import SCHEMA as AUTH_SCHEMA
from hub.auth.service import AccountService
from hub.automation.engine import AutomationEngine
from hub.automation.storage import SCHEMA as AUTOMATION_SCHEMA
from hub.bus import EventBus, HubStarted
from hub.clock import Clock, SystemClock
from hub.cloud.service import SCHEMA as CLOUD_SCHEMA
from hub.cloud.service import CloudSync
from hub.cloud.sources import PrivacyConsent, VaultSecrets
from hub.commands import DeviceCommands
from hub.config import LoadedConfig
from hub.devices import SCHEMA as DEVICES_SCHEMA
from hub.devices import DeviceRegistry
from hub.discovery.registry import SCHEMA as DISCOVERY_SCHEMA
from hub.discovery.service import DiscoveryService
from hub.homekit.bridge import SCHEMA as HOMEKIT_SCHEMA
from hub.homekit.bridge import HomekitBridge
from hub.integration_values import SCHEMA as INTEGRATION_VALUES_SCHEMA
from hub.loader import IntegrationHost
from hub.privacy.center import PrivacyCenter
from hub.privacy.schema import SCHEMA as PRIVACY_SCHEMA
from hub.provisioning.service import ProvisioningService
from hub.state import SCHEMA as STATE_SCHEMA
from hub.state import StateStore
from hub.storage import Database, Schema
from hub.vault import SCHEMA as VAULT_SCHEMA
from hub.vault import Vault

_LOG = logging.getLogger(__name__)

DB_FILENAME = "hub.db"


def core_schemas() -> list[Schema]:
    """Every component's migrations, in the order they are applied."""
    return [DEVICES_SCHEMA, STATE_SCHEMA, AUDIT_SCHEMA, AUTH_SCHEMA, DISCOVERY_SCHEMA,
            AUTOMATION_SCHEMA, PRIVACY_SCHEMA, VAULT_SCHEMA, CLOUD_SCHEMA,
            INTEGRATION_VALUES_SCHEMA, HOMEKIT_SCHEMA]


class Hub:
    """The running hub's core. `async with Hub(loaded) as hub: ...`."""

    def __init__(self, loaded: LoadedConfig, *, clock: Clock | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.clock: Clock = clock or SystemClock()
        self.state_dir: Path = loaded.state_dir
        self.version = __version__
        self.started_monotonic = self.clock.monotonic()
        self.bus = EventBus(self.config.bus.queue_size)
        self.db = Database(
            self.state_dir / DB_FILENAME,
            self.schemas(),
            commit_interval=self.config.storage.commit_interval,
            max_batch=self.config.storage.max_batch,
            synchronous=self.config.storage.synchronous,
            check_seconds=self.config.storage.integrity_check_seconds,
            clock=self.clock,
        )
        self.devices = DeviceRegistry(self.db, self.bus, self.clock)
        self.states = StateStore(self.db, self.bus, self.clock,
                                 self.config.storage.state_snapshot_interval)
        self.vault = Vault(self.db, self.state_dir, self.clock)
        self.audit = AuditLog(self.db, self.clock)
        self.auth = AccountService(self.db, self.clock, self.config.auth, self.audit,
                                   self.state_dir)
        # Callbacks (lambdas) where two services need each other: resolved at call time.
        self.discovery = DiscoveryService(
            self.config.discovery, db=self.db, bus=self.bus, clock=self.clock,
            devices=self.devices, states=self.states, manifests=loaded.manifests,
            configured=self.config.integrations, api_host=self.config.api.host,
            version=self.version,
            integration_loaded=lambda name: self.integrations.loaded(name))
        self.provisioning = ProvisioningService(
            self.config.provisioning, state_dir=self.state_dir, config_path=loaded.path,
            problem=loaded.document.problem, clock=self.clock, bus=self.bus,
            vault=self.vault, audit=self.audit, discovery=self.discovery,
            signal=lambda kind, details: self.privacy.signal(kind, details),
            integration=lambda name: self.integrations.running(name))
        self.privacy = PrivacyCenter(
            self.config.privacy, location=self.config.location, db=self.db, bus=self.bus,
            clock=self.clock, devices=self.devices, states=self.states, audit=self.audit,
            accounts=self.auth, vault=self.vault, state_dir=self.state_dir,
            config_path=loaded.path, version=self.version)
        self.integrations = IntegrationHost(
            loaded.manifests, dict(self.config.integrations), db=self.db,
            devices=self.devices, states=self.states, bus=self.bus, clock=self.clock,
            vault=self.vault, audit=self.audit, discovery=self.discovery,
            attestation=self.provisioning, egress=self.privacy.egress,
        )
        self.commands = DeviceCommands(self.devices, self.integrations)
        self.automations = AutomationEngine(
            self.config.automation, location=self.config.location, loaded=loaded, db=self.db,
            bus=self.bus, clock=self.clock, devices=self.devices, states=self.states,
            integrations=self.integrations, privacy=self.privacy)
        self.cloud = CloudSync(
            self.config.cloud, db=self.db, bus=self.bus, clock=self.clock, devices=self.devices,
            states=self.states, commands=self.commands,
            consent=PrivacyConsent(self.privacy.allowed, self.bus),
            secrets=VaultSecrets(self.vault), egress=self.privacy.egress,
            user_restricted=self.privacy.user_restricted, automations=self.automations,
            yaml_automations=self.config.automations)
        self.homekit = HomekitBridge(
            self.config.homekit_bridge, db=self.db, bus=self.bus, clock=self.clock,
            devices=self.devices, states=self.states, vault=self.vault, audit=self.audit,
            commands=self.commands, zeroconf=self.discovery.zeroconf,
            addresses=self._mdns_addresses, own_services=self.discovery.own_services,
            zeroconf_replaced=self.discovery.on_zeroconf_replaced,
            addresses_changed=self.discovery.on_addresses_changed)
        self._stack: contextlib.AsyncExitStack | None = None
        self.running = False

    def schemas(self) -> Sequence[Schema]:
        return core_schemas()

    def _mdns_addresses(self) -> list[str]:
        """The addresses the hub's zeroconf serves (where the HomeKit bridge listens)."""
        mdns = self.discovery.mdns
        return sorted({ip for ips in mdns.interfaces.values() for ip in ips}) if mdns else []

    async def __aenter__(self) -> Hub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True,
                                    mode=0o700)
            await stack.enter_async_context(self.db)
            await self.vault.open()
            stack.callback(self.vault.close)
            await self.devices.load()
            await self.states.load()
            stack.callback(self.states.close)
            # Unwinds before the state store unhooks: its last changes reach the disk.
            stack.push_async_callback(self.states.save)
            await self.audit.load()
            await self.auth.start()
            stack.push_async_callback(self.auth.stop)
            await self.provisioning.start()
            stack.push_async_callback(self.provisioning.stop)
            await self.privacy.start()  # before integrations: the egress guard is in place
            stack.push_async_callback(self.privacy.stop)
            await self.cloud.start()  # after privacy: it asks for consent
            stack.push_async_callback(self.cloud.stop)
            await self.integrations.start()
            stack.push_async_callback(self.integrations.stop)
            await self.discovery.start()
            stack.push_async_callback(self.discovery.stop)
            await self.automations.start()
            stack.push_async_callback(self.automations.stop)
            await self.homekit.start()  # after discovery: it advertises on its zeroconf
            stack.push_async_callback(self.homekit.stop)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.running = True
        # Integrations' settings were checked before start; a large device list's positions
        # (thousands of entries) need not stay in memory for the hub's life.
        self.loaded.document.forget(("integrations",))
        self.bus.publish(HubStarted(self.clock.time()))

    async def stop(self) -> None:
        if self._stack is None:
            return
        self.running = False
        stack, self._stack = self._stack, None
        await stack.aclose()

    @property
    def uptime(self) -> float:
        return self.clock.monotonic() - self.started_monotonic

    async def health(self) -> dict[str, Any]:
        """Status for /api/health: no personal data."""
        integrations = self.integrations.status()
        problems = [f"integration {n}: {s['state']}" for n, s in integrations.items()
                    if s["state"] != "loaded"]
        problems += [f"integration {n}: {s['detail']['problem']}"
                     for n, s in integrations.items() if s.get("detail", {}).get("problem")]
        full = await self.db.full_reason()
        if full is not None:
            problems.append(full)
        out: dict[str, Any] = {
            "status": "degraded" if problems else "ok",
            "version": self.version,
            "uptime": round(self.uptime, 3),
            "started_at": round(time.time() - self.uptime, 3),
            "integrations": {n: s["state"] for n, s in integrations.items()},
            "integration_details": {n: s["detail"] for n, s in integrations.items()
                                    if "detail" in s},
            "onboarding_required": self.auth.needs_owner,
            "storage": self.db.stats.as_dict(),
            "bus": {"published": self.bus.published, "dropped": self.bus.dropped},
            "discovery": self.discovery.health(),
        }
        if problems:
            out["problems"] = problems
        return out
