"""Hypothesis against the Tasmota path (hatasmota and our parts) with the real firmware
discovery of the five models: any payload on any of their topics is read or refused, never
raises out, never takes a device away, and what reaches the hub's state is plain JSON."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.clock import SystemClock
from integrations.mqtt.tasmota import Tasmota
from tests.mqtt import tasmota_firmware as fw

MODELS = {**fw.MODELS, fw.BLIND_MAC: fw.BLIND}


class _Log(logging.LoggerAdapter):  # type: ignore[type-arg]
    """ctx.log: records what would be logged as a bug (log.exception)."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("tasmota-fuzz"), {})
        self.bugs: list[str] = []

    def exception(self, msg: object, *args: Any, **kw: Any) -> None:  # type: ignore[override]
        self.bugs.append(str(msg) % args)


@dataclass
class _Ctx:
    """The few IntegrationContext calls Tasmota makes (a unit-test double of our own
    context: the hub's side is tested through the API in test_tasmota_native.py)."""

    name: str = "mqtt"
    log: _Log = field(default_factory=_Log)
    clock: SystemClock = field(default_factory=SystemClock)
    listed: dict[str, Any] = field(default_factory=dict)
    malformed: int = 0

    def report_discovered(self, key: str, info: Any, *, source: str, present: bool) -> Any:
        json.dumps(info.data)  # what the API shows must be JSON
        self.listed[key] = info
        return SimpleNamespace(id=key, device_id=None, state="new")

    def withdraw_discovered(self, key: str, *, source: str) -> None:
        self.listed.pop(key, None)

    def device(self, device_id: str) -> None:
        return None

    def report_malformed(self, what: str, detail: str = "") -> None:
        self.malformed += 1


class _Connection:
    def subscribe(self, topic: str) -> None: ...
    def unsubscribe(self, topic: str) -> None: ...

    async def publish(self, topic: str, payload: str, qos: int = 0, retain: bool = False
                      ) -> None: ...


STATE_TOPICS = [f"{p}/{t}/{s}" for t in fw.TOPICS.values()
                for p, s in (("tele", "STATE"), ("tele", "SENSOR"), ("stat", "RESULT"),
                             ("stat", "STATUS10"), ("stat", "STATUS11"), ("tele", "LWT"))]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["POWER", "POWER1", "Dimmer", "CT", "Color", "HSBColor", "FanSpeed",
                         "Shutter1", "Position", "Direction", "Tilt", "Switch1", "Action",
                         "Button1", "ENERGY", "Power", "Total", "StatusSNS", "StatusSTS",
                         "Wifi", "RSSI", "Signal", "ANALOG", "Temperature", "Scheme"]),
        kids, max_size=5),
    max_leaves=25)
payloads = (json_values.map(lambda v: json.dumps(v).encode())
            | st.binary(max_size=80)
            | st.sampled_from([b"Online", b"Offline", b"", b"ON", b"{}", b"[]", b"null"]))
discovery = st.tuples(st.sampled_from(sorted(MODELS)), st.sampled_from(["config", "sensors"]),
                      json_values.map(lambda v: json.dumps(v).encode()))


@settings(max_examples=200, deadline=None)
@given(messages=st.lists(st.tuples(st.sampled_from(STATE_TOPICS), payloads), max_size=12),
       rediscovery=st.lists(discovery, max_size=2))
def test_any_message_is_read_or_refused(messages: list[tuple[str, bytes]],
                                        rediscovery: list[tuple[str, str, bytes]]) -> None:
    asyncio.run(_run(messages, rediscovery))


async def _run(messages: list[tuple[str, bytes]],
               rediscovery: list[tuple[str, str, bytes]]) -> None:
    ctx = _Ctx()
    tasmota = Tasmota(ctx, "tasmota/discovery", _Connection(),  # type: ignore[arg-type]
                      max_payload=65536, max_rate=10_000)
    tasmota.connected = True
    await tasmota.start()
    for mac, model in MODELS.items():
        for kind in ("config", "sensors"):
            assert tasmota.on_message(f"tasmota/discovery/{mac}/{kind}", model[kind].encode())
    await _drained(tasmota)
    assert len(ctx.listed) == len(MODELS)
    for mac, kind, payload in rediscovery:  # a device announcing garbage keeps what it had
        tasmota.on_message(f"tasmota/discovery/{mac}/{kind}", payload)
    for topic, payload in messages:
        tasmota.on_message(topic, payload)
    await _drained(tasmota)
    assert ctx.log.bugs == []
    assert len(ctx.listed) == len(MODELS)  # JSON is not an empty retained config
    for device in tasmota.devices.values():
        json.dumps(device.values, allow_nan=False)  # plain values, finite numbers
    await tasmota.stop()


async def _drained(tasmota: Tasmota) -> None:
    for _ in range(100):
        worker = tasmota.broker._worker
        if worker is None or worker.done():
            return
        await asyncio.sleep(0)
    raise AssertionError("hatasmota's callbacks did not finish")
