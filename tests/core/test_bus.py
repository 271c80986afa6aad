"""Event bus: indexed dispatch, isolation of failing callbacks, bounded queues that drop."""

from __future__ import annotations

import asyncio

from hub.bus import DeviceEvent, Event, EventBus, StateChanged


def _sc(dev: str, value: int) -> StateChanged:
    return StateChanged(dev, "value", None, value, 0.0)


async def test_keyed_and_wildcard_callbacks() -> None:
    bus = EventBus()
    seen_a: list[int] = []
    seen_all: list[str] = []
    unsub = bus.subscribe(StateChanged, lambda e: seen_a.append(e.new), key="a")
    bus.subscribe(StateChanged, lambda e: seen_all.append(e.device_id))
    bus.publish(_sc("a", 1))
    bus.publish(_sc("b", 2))
    bus.publish(DeviceEvent("a", "press", {}, 0.0))  # other type: not delivered
    unsub()
    bus.publish(_sc("a", 3))
    assert seen_a == [1]
    assert seen_all == ["a", "b", "a"]


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    bus = EventBus()
    got: list[int] = []

    def boom(_e: StateChanged) -> None:
        raise RuntimeError("subscriber bug")

    bus.subscribe(StateChanged, boom)
    bus.subscribe(StateChanged, lambda e: got.append(e.new))
    bus.publish(_sc("a", 1))
    assert got == [1] and bus.callback_errors == 1


async def test_slow_subscriber_drops_and_does_not_stall_others() -> None:
    bus = EventBus(queue_size=10)
    slow = bus.listen([StateChanged], name="slow")
    fast = bus.listen([StateChanged], maxsize=10_000, name="fast")
    received: list[int] = []

    async def consume() -> None:
        async for event in fast:
            received.append(event.new)
            if len(received) == 1000:
                return

    task = asyncio.create_task(consume())
    for i in range(1000):
        bus.publish(_sc("a", i))
    await asyncio.wait_for(task, 5)
    assert received == list(range(1000))
    assert slow.dropped == 990 and slow.backlog == 10
    assert bus.dropped == 990
    stats = {s["name"]: s for s in bus.stats()["subscriptions"]}
    assert stats["slow"]["dropped"] == 990
    first = await slow.get()
    assert first is not None and first.new == 0  # it keeps the oldest it could hold
    slow.close()
    fast.close()
    bus.publish(_sc("a", 1))
    assert bus.stats()["subscriptions"] == []


async def test_listen_with_predicate_filters() -> None:
    bus = EventBus()
    sub = bus.listen([StateChanged, DeviceEvent], predicate=lambda e: e.key == "x")
    bus.publish(_sc("y", 1))
    bus.publish(_sc("x", 2))
    bus.publish(DeviceEvent("x", "press", {}, 0.0))
    assert [type(e).__name__ for e in (sub.get_nowait(), sub.get_nowait())] == [
        "StateChanged", "DeviceEvent"]
    assert sub.get_nowait() is None
    sub.close()
    assert await sub.get() is None


def test_state_changed_json_is_the_generic_form() -> None:
    """StateChanged spells its JSON out for speed; it must stay what every event gives."""
    ev = StateChanged("virtual.lamp", "on", False, True, 1764136000.5)
    assert ev.to_json() == Event.to_json(ev)
    assert list(ev.to_json()) == list(Event.to_json(ev))  # same key order on the wire
