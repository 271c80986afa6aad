"""The private parts of libraries the hub touches (hub/thirdparty.py) still exist as we use them.

An upgrade of bleak, py-improv-ble-client or aiomqtt that renames one fails here, loudly,
instead of leaking a D-Bus connection or a task at run time.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
from pathlib import Path
from typing import Any

from hub import thirdparty

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_part_is_still_there() -> None:
    from integrations.esphome import thirdparty as esphome_thirdparty
    from integrations.matter import thirdparty as matter_thirdparty
    from integrations.mqtt import thirdparty as mqtt_thirdparty

    assert thirdparty.missing_parts() == []
    assert thirdparty.missing_parts(mqtt_thirdparty.PRIVATE_PARTS) == []
    assert thirdparty.missing_parts(esphome_thirdparty.PRIVATE_PARTS) == []
    assert thirdparty.missing_parts(matter_thirdparty.PRIVATE_PARTS) == []


async def test_release_bleak_manager_closes_the_loops_connection() -> None:
    from bleak.backends.bluezdbus import manager as bluez_manager

    class Bus:
        closed = False

        def disconnect(self) -> None:
            self.closed = True

    manager = bluez_manager.BlueZManager()
    bus = Bus()
    watcher = asyncio.ensure_future(asyncio.Event().wait())
    manager._bus, manager._bus_watcher_task = bus, watcher
    loop = asyncio.get_running_loop()
    bluez_manager._global_instances[loop] = manager
    await thirdparty.release_bleak_manager()
    assert loop not in bluez_manager._global_instances
    assert bus.closed and watcher.cancelled()
    await thirdparty.release_bleak_manager()  # nothing left: harmless


async def test_mqtt_client_class_runs_the_connect_under_its_purpose() -> None:
    entered: list[str] = []

    class Purpose:
        def __enter__(self) -> None:
            entered.append("in")

        def __exit__(self, *exc: object) -> None:
            entered.append("out")

    import aiomqtt

    cls = thirdparty.mqtt_client_class()
    assert issubclass(cls, aiomqtt.Client)
    client = cls("127.0.0.1", 1)
    client.purpose = Purpose
    client._client.connect = lambda *a, **k: entered.append("connect")  # no socket
    client._client_connect()
    assert entered == ["in", "connect", "out"]


async def test_mqtt_connect_cancelled_before_connack_leaves_nothing_behind() -> None:
    """aiomqtt 2.5 alone leaves the socket open and a cancelled future behind: the broker's
    late CONNACK then raises CancelledError on the loop (the hygiene fixture fails on that)."""
    got_connect = asyncio.Event()
    peers: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append((reader, writer))
        await reader.read(2)  # the CONNECT packet's first bytes: no CONNACK yet
        got_connect.set()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = thirdparty.mqtt_client_class()("127.0.0.1", port, timeout=30)
    entering = asyncio.ensure_future(client.__aenter__())
    await asyncio.wait_for(got_connect.wait(), 10)
    entering.cancel()
    try:
        await entering
    except asyncio.CancelledError:
        pass
    reader, writer = peers[0]
    writer.write(bytes([0x20, 2, 0, 5]))  # the late answer: CONNACK "not authorized"
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 10)  # until the client closed its socket
    assert rest.startswith(b"\x00\x04MQTT")  # the rest of CONNECT, then EOF: closed
    assert not client._lock.locked()  # the client can be used again
    writer.close()
    server.close()
    await server.wait_closed()
    for _ in range(3):
        await asyncio.sleep(0)  # let any late callback run: the hygiene fixture checks


# `obj._name` outside a thirdparty.py that is on an object of our own: (file, expression).
OUR_PRIVATE = {
    ("hub/loader.py", "ctx._close"),
    ("hub/loader.py", "self._host._crashed"),
    ("hub/bus.py", "self.bus._remove"),
    # the standard library's documented return type of add_subparsers(), named for typing
    ("hub/vault_cli.py", "argparse._SubParsersAction"),
    ("hub/matter_cli.py", "argparse._SubParsersAction"),
}


def _private_reads(path: Path) -> list[tuple[int, str]]:
    """Every `x._name` (x not self or cls) and getattr/setattr/hasattr(x, "_name") in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name = None
        if isinstance(node, ast.Attribute) and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            name = node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            name = node.args[1].value
        if name and name.startswith("_") and not name.startswith("__"):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_private_library_attribute_is_read_elsewhere() -> None:
    """Private parts of other code are touched only in a `thirdparty.py` (the core's, or an
    integration's own), where PRIVATE_PARTS lists them for the test above. Any other
    `obj._name` must be on an object of ours and listed in OUR_PRIVATE."""
    offenders = []
    for path in [*(ROOT / "hub").rglob("*.py"), *(ROOT / "integrations").rglob("*.py")]:
        if path.name == "thirdparty.py":
            continue
        rel = str(path.relative_to(ROOT))
        for line, expr in _private_reads(path):
            if (rel, expr) not in OUR_PRIVATE:
                offenders.append(f"{rel}:{line} {expr}")
    assert not offenders, offenders


def test_the_scan_sees_attribute_and_getattr_reads(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(c, self):\n    c._sock.x = getattr(c, '_in_packet')\n"
                      "    return self._ok, c.__class__\n")
    assert sorted(e for _, e in _private_reads(sample)) == ["c._sock", "getattr(c, '_in_packet')"]


def _srp_exchange(server_b: int, client_a: int, padded: bool,
                  code: str = "031-45-154") -> tuple[bool, Any]:
    """One SRP exchange between aiohomekit's client (setup code `code`) and HAP-python's
    server (code 031-45-154); (True when both proofs verify and both sides hold the same
    session key, the client)."""
    import hashlib

    from aiohomekit.crypto.srp import SrpClient, pad_left, to_byte_array
    from pyhap.hsrp import Server
    from pyhap.params import get_srp_context
    from pyhap.util import long_to_bytes

    ctx = get_srp_context(3072, hashlib.sha512, 16)
    cls = thirdparty.padded_srp_server_class() if padded else Server
    server = cls(ctx, b"Pair-Setup", b"031-45-154", s=bytes(range(1, 17)), b=server_b)
    salt, big_b = server.get_challenge()
    client = SrpClient("Pair-Setup", code)
    client.a = client_a
    client.A = pow(client.g, client_a, client.n)
    client.A_b = pad_left(to_byte_array(client.A), 384)
    client.set_salt(bytearray(salt))
    client.set_server_public_key(long_to_bytes(big_b))  # as HAP-python sends it in M2
    server.set_A(client.get_public_key_bytes())
    hamk = server.verify(client.get_proof_bytes())
    ok = (hamk is not None and client.verify_servers_proof_bytes(hamk)
          and long_to_bytes(server.get_session_key()) == client.get_session_key_bytes())
    return ok, client


def _srp_pair(server_b: int, client_a: int, padded: bool) -> bool:
    return _srp_exchange(server_b, client_a, padded)[0]


def test_padded_srp_pairs_where_stock_hap_python_fails() -> None:
    """B, S or K with a leading zero byte (1 in 256 each): stock HAP-python and aiohomekit
    disagree, the padded server agrees. Keys come from a fixed seed (deterministic). Every
    exchange on the way: the client alone tells exactly when padding made the difference."""
    import random

    rng = random.Random(20261203)
    plain = (rng.getrandbits(256), rng.getrandbits(256))
    failing = None
    for _ in range(4000):
        b, a = rng.getrandbits(256), rng.getrandbits(256)
        ok, client = _srp_exchange(b, a, padded=False)
        assert thirdparty.srp_padding_could_matter(client) is not ok
        if not ok:
            failing = (b, a)
            break
    assert failing is not None, "no failing exchange in 4000: HAP-python fixed? see thirdparty"
    assert _srp_pair(*failing, padded=True)
    assert _srp_pair(*plain, padded=True) and _srp_pair(*plain, padded=False)


def test_a_wrong_code_is_told_from_padding() -> None:
    """A refused wrong code where no value had a leading zero byte: not padding (tried once).
    (The padding cases are told apart in the test above; B sent short in
    tests/homekit/test_controller.py.)"""
    ok, client = _srp_exchange(0x5EED, 0xC0DE, padded=False, code="123-45-679")
    assert not ok and not thirdparty.srp_padding_could_matter(client)
    assert thirdparty.srp_padding_could_matter(object())  # not understood: could be


async def test_watching_srp_sees_the_clients_of_its_own_task_only() -> None:
    import aiohomekit.protocol as protocol

    with thirdparty.watching_srp() as watch:
        assert watch.watching and watch.could_be_padding()  # nothing seen: cannot tell
        mine = protocol.SrpClient("Pair-Setup", "031-45-154")

        async def elsewhere() -> None:  # another task, outside any watch
            protocol.SrpClient("Pair-Setup", "031-45-154")

        await asyncio.get_running_loop().create_task(elsewhere(), context=contextvars.Context())
    protocol.SrpClient("Pair-Setup", "031-45-154")  # after the block
    assert watch.clients == [mine]
