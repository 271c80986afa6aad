"""Virtual devices defined in config: switches, buttons, numeric and binary sensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hub.facade import AttributeMeta, CommandSpec, Device, IntegrationContext, PrivacyScope

_SWITCH_COMMANDS = (CommandSpec("turn_on"), CommandSpec("turn_off"), CommandSpec("toggle"))
_SENSOR_COMMANDS = (CommandSpec("set", {"value": "number"}, ("value",)),)
_BINARY_COMMANDS = (CommandSpec("set", {"value": "boolean"}, ("value",)),)
_BUTTON_COMMANDS = (CommandSpec("press"),)
_SWITCH_TO = {"turn_on": True, "turn_off": False}  # anything else: toggle

# Count of setups that failed on purpose, kept across restarts of the integration.
_FAULT_COUNTS: dict[int, int] = {}


def create() -> VirtualIntegration:
    return VirtualIntegration()


@dataclass
class VirtualIntegration:
    """One instance per load; devices come from `integrations.virtual.devices`."""

    kinds: dict[str, str] = field(default_factory=dict)

    async def setup(self, ctx: IntegrationContext) -> None:
        faults = ctx.config.get("faults") or {}
        key = id(ctx.config)
        if _FAULT_COUNTS.get(key, 0) < faults.get("fail_setup", 0):
            _FAULT_COUNTS[key] = _FAULT_COUNTS.get(key, 0) + 1
            raise RuntimeError(f"virtual: failing setup on purpose ({_FAULT_COUNTS[key]})")
        for spec in ctx.config.get("devices", []):
            self._add(ctx, spec)
        if faults.get("crash_after") is not None:
            ctx.create_task(self._crash(ctx.clock, faults["crash_after"]), "crash")

    async def unload(self, ctx: IntegrationContext) -> None:
        for device in ctx.devices():
            ctx.set_available(device.id, False)

    async def forget_device(self, ctx: IntegrationContext, device: Device) -> None:
        self.kinds.pop(device.id, None)  # no connection, no secret

    async def command(
        self, ctx: IntegrationContext, device: Device, command: str, params: dict[str, Any]
    ) -> Any:
        kind = self.kinds.get(device.id)
        if kind == "switch":
            on = _SWITCH_TO.get(command)
            if on is None:
                on = not ctx.state(device.id, "on", False)
            ctx.set_state(device.id, {"on": on})
            return {"on": on}
        if kind == "button":
            ctx.fire_event(device.id, "press", {})
            return {"pressed": True}
        value = params["value"]  # (within the device's min/max: its CommandSpec checked)
        attr = "value" if kind == "sensor" else "on"
        ctx.set_state(device.id, {attr: value})
        return {attr: value}

    def _add(self, ctx: IntegrationContext, spec: dict[str, Any]) -> None:
        kind = spec["kind"]
        dev_id = f"virtual.{spec['id']}"
        commands, attributes, events = {
            "switch": (_SWITCH_COMMANDS, ("on",), ()),
            "button": (_BUTTON_COMMANDS, (), ("press",)),
            "sensor": (_SENSOR_COMMANDS, ("value",), ()),
            "binary_sensor": (_BINARY_COMMANDS, ("on",), ()),
        }[kind]
        if kind == "sensor" and (spec.get("min") is not None or spec.get("max") is not None):
            commands = (CommandSpec("set", {"value": "number"}, ("value",),
                                    {"value": (spec.get("min"), spec.get("max"))}),)
        existing = ctx.device(dev_id)
        ctx.register_device(Device(
            id=dev_id, name=existing.name if existing else spec.get("name", spec["id"]),
            integration=ctx.name,
            model=f"virtual {kind}", manufacturer="Uone", transport="virtual",
            area=existing.area if existing else spec.get("area"),
            scope=existing.scope if existing else PrivacyScope(),
            commands=commands, attributes=attributes, events=events,
            attribute_meta=_meta(spec, attributes),
        ))
        self.kinds[dev_id] = kind
        if attributes and ctx.state(dev_id, attributes[0]) is None:
            initial = spec.get("initial", False if attributes[0] == "on" else 0)
            ctx.set_state(dev_id, {attributes[0]: initial})
        ctx.set_available(dev_id, True)

    async def _crash(self, clock: Any, after: float) -> None:
        await clock.sleep(after)
        raise RuntimeError("virtual: crashing on purpose")


def _meta(spec: dict[str, Any], attributes: tuple[str, ...]) -> dict[str, AttributeMeta]:
    """What the config says about a sensor's value: unit, device class, range."""
    meta = AttributeMeta(unit=spec.get("unit"), device_class=spec.get("device_class"),
                         minimum=spec.get("min"), maximum=spec.get("max"))
    return {attributes[0]: meta} if attributes and meta.to_json() else {}
