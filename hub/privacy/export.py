"""Export: a ZIP of JSON files, each with its JSON Schema, in the requester's scope.

The ZIP is produced as it is read: rows come in batches from a dedicated read-only
connection (one snapshot for the whole export), each batch is serialised and handed to the
sink, so memory stays flat whatever the history size. Secrets never enter it: no password
hashes, TOTP secrets, token hashes, vault ciphertext; Wi-Fi networks appear as SSIDs only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiosqlite

from hub.auth.principal import Principal, Role
from hub.privacy.consent import PURPOSES

Sink = Callable[[bytes], Awaitable[None]]
SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"

_NUM = {"type": "number"}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_NNUM = {"type": ["number", "null"]}
_BOOL = {"type": "boolean"}
_ANY: dict[str, Any] = {}


def _obj(props: dict[str, Any], required: Iterable[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props,
            "required": sorted(required if required is not None else props),
            "additionalProperties": False}


ITEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "account": _obj({
        "hub_version": _STR, "exported_at": _NUM, "requested_by": _STR, "scope": _STR,
        "notice_version": {"type": "integer"}, "time_zone": _STR,
        "location": {"type": ["object", "null"], "properties": {
            "latitude": _NUM, "longitude": _NUM, "elevation": _NUM}},
        "wifi_networks": {"type": "array", "items": _obj({"ssid": _STR,
                                                          "last_used": _NNUM})},
        # phones paired with the HomeKit bridge: how many, never their keys (owner only;
        # null when unknown: the CLI cannot open the vault)
        "homekit_paired_phones": {"type": ["integer", "null"], "minimum": 0},
    }),
    "users": _obj({
        "id": _STR, "username": _STR, "role": _STR, "is_minor": _BOOL,
        "granted_devices": {"type": "array", "items": _STR},
        "granted_areas": {"type": "array", "items": _STR}, "totp_enabled": _BOOL,
        "created_at": _NUM, "updated_at": _NUM, "restricted": _BOOL,
        "presence_objection": _BOOL,
        "sign_ins": {"type": "array", "items": _obj({
            "ts": _NUM, "address": _NSTR, "ok": _BOOL, "reason": _NSTR})},
    }),
    "devices": _obj({
        "id": _STR, "name": _STR, "integration": _STR, "did": _NSTR, "mac": _NSTR,
        "model": _NSTR, "manufacturer": _NSTR, "fw_version": _NSTR, "transport": _NSTR,
        "area": _NSTR, "restricted": _BOOL, "scope": _ANY, "created_at": _NUM,
        "updated_at": _NUM,
        "state": {"type": "object", "additionalProperties": _obj({
            "value": _ANY, "last_changed": _NUM, "last_updated": _NUM})},
    }),
    "state_history": _obj({"device_id": _STR, "attribute": _STR, "value": _ANY, "ts": _NUM}),
    "events": _obj({"device_id": _NSTR, "event_type": _STR, "data": _ANY, "ts": _NUM}),
    "automations": _obj({"id": _STR, "definition": _ANY, "enabled": {"type": ["boolean", "null"]},
                         "created_at": _NUM, "updated_at": _NUM}),
    "consents": _obj({
        "purpose": {"enum": list(PURPOSES)}, "action": _STR,
        "notice_version": {"type": "integer"}, "by": _NSTR, "ts": _NUM}),
    "homekit_bridge": _obj({  # devices the owner chose to show in Apple Home
        "device_id": _STR, "aid": {"type": "integer"}, "source": {"enum": ["config", "api"]},
        "added_at": _NUM}),
    "audit_log": _obj({
        "id": {"type": "integer"}, "ts": _NUM, "actor": _NSTR, "action": _STR,
        "target": _NSTR, "details": {"type": "object"}, "hash": _STR}),
}
FILES = tuple(ITEM_SCHEMAS)


def file_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of `<name>.json` in the export."""
    return {
        "$schema": SCHEMA_URI, "$id": f"uone-hub:export:{name}", "title": f"Uone Hub {name}",
        "type": "object", "required": ["kind", "items"], "additionalProperties": False,
        "properties": {"kind": {"const": name}, "items": {"type": "array",
                                                          "items": ITEM_SCHEMAS[name]}},
    }


@dataclass(frozen=True, slots=True)
class ExportSource:
    """What the export reads: the database file and a few facts from the running hub."""

    db_path: Path
    hub_version: str
    notice_version: int
    time_zone: str
    location: dict[str, float] | None
    wifi_networks: list[dict[str, Any]]
    now: float
    batch: int = 2000
    homekit_paired_phones: int | None = None  # None: not known (no vault)


@dataclass(slots=True)
class ExportStats:
    files: int = 0
    rows: int = 0
    bytes: int = 0


async def write_export(source: ExportSource, who: Principal, sink: Sink,
                       skip_devices: frozenset[str] = frozenset()) -> ExportStats:
    """Write the whole ZIP to `sink`, chunk by chunk."""
    stats = ExportStats()
    buf = _Buffer()
    import zipfile  # loaded for the first export, not at start-up

    zf = zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
    async with _snapshot(source.db_path) as conn:
        reader = _Reader(conn, source, who, skip_devices)
        for name in FILES:
            schema = json.dumps(file_schema(name), indent=2).encode()
            zf.writestr(f"schemas/{name}.schema.json", schema)
            with zf.open(f"{name}.json", "w", force_zip64=True) as fh:
                fh.write(b'{"kind":' + json.dumps(name).encode() + b',"items":[')
                first = True
                async for chunk in _batched(reader.items(name), source.batch):
                    parts = [_dumps(item) for item in chunk]
                    data = ("" if first else ",") + ",".join(parts)
                    first = False
                    await asyncio.to_thread(fh.write, data.encode())  # deflate off the loop
                    stats.rows += len(chunk)
                    stats.bytes += await _drain(buf, sink)
                fh.write(b"]}")
            stats.files += 1
            stats.bytes += await _drain(buf, sink)
    readme = ("Uone Hub export. Each NAME.json is {\"kind\", \"items\"}, described by "
              "schemas/NAME.schema.json (JSON Schema 2020-12). Secrets are never exported.\n")
    zf.writestr("README.txt", readme)
    zf.close()
    stats.bytes += await _drain(buf, sink)
    return stats


async def export_to_file(source: ExportSource, who: Principal, path: Path) -> ExportStats:
    """Write the export to `path` (0600), atomically."""
    tmp = path.with_name(path.name + ".partial")
    fh = await asyncio.to_thread(_open_private, tmp)
    try:
        async def sink(data: bytes) -> None:
            await asyncio.to_thread(fh.write, data)

        stats = await write_export(source, who, sink)
    except BaseException:
        await asyncio.to_thread(_discard, fh, tmp)
        raise
    await asyncio.to_thread(_commit, fh, tmp, path)
    return stats


# -- reading, scoped -------------------------------------------------------------------------


class _Reader:
    def __init__(self, conn: aiosqlite.Connection, source: ExportSource, who: Principal,
                 skip_devices: frozenset[str]) -> None:
        self.conn = conn
        self.source = source
        self.who = who
        self.owner = who.role >= Role.OWNER
        self.skip = skip_devices
        self._device_ids: list[str] | None = None
        self._tables: set[str] | None = None

    async def items(self, name: str) -> AsyncIterator[dict[str, Any]]:
        gen = getattr(self, f"_{name}")
        async for item in gen():
            yield item

    async def _tables_present(self) -> set[str]:
        if self._tables is None:
            rows = await self._all("SELECT name FROM sqlite_master WHERE type = 'table'")
            self._tables = {r["name"] for r in rows}
        return self._tables

    async def _all(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _iter(self, sql: str, params: Any = ()) -> AsyncIterator[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cur:
            while True:
                rows = await cur.fetchmany(self.source.batch)
                if not rows:
                    return
                for row in rows:
                    yield row

    async def device_ids(self) -> list[str]:
        if self._device_ids is None:
            rows = await self._all("SELECT id, area FROM devices ORDER BY id")
            self._device_ids = [r["id"] for r in rows
                             if r["id"] not in self.skip
                             and (self.who.role >= Role.MEMBER
                                  or self.who.can_see_device(r["id"], r["area"]))]
        return self._device_ids

    async def _account(self) -> AsyncIterator[dict[str, Any]]:
        s = self.source
        yield {
            "hub_version": s.hub_version, "exported_at": s.now,
            "requested_by": self.who.username, "scope": "household" if self.owner else "own",
            "notice_version": s.notice_version, "time_zone": s.time_zone,
            "location": s.location if self.owner else None,
            "wifi_networks": [{"ssid": str(w["ssid"]), "last_used": w.get("last_used")}
                              for w in s.wifi_networks] if self.owner else [],
            "homekit_paired_phones": s.homekit_paired_phones if self.owner else None,
        }

    async def _users(self) -> AsyncIterator[dict[str, Any]]:
        if "users" not in await self._tables_present():
            return
        sql = ("SELECT id, username, role, is_minor, granted_devices, granted_areas, "
               "totp_enabled, created_at, updated_at FROM users")
        params: tuple[Any, ...] = ()
        if not self.owner:
            sql += " WHERE id = ?"
            params = (self.who.user_id,)
        subjects = {r["user_id"]: r for r in await self._all("SELECT * FROM privacy_subjects")}
        for r in await self._all(sql + " ORDER BY username", params):
            logins = await self._all(
                "SELECT ts, address, ok, reason FROM logins WHERE user_id = ? ORDER BY ts",
                (r["id"],)) if "logins" in await self._tables_present() else []
            subj = subjects.get(r["id"])
            yield {
                "id": r["id"], "username": r["username"], "role": Role(r["role"]).label,
                "is_minor": bool(r["is_minor"]),
                "granted_devices": json.loads(r["granted_devices"]),
                "granted_areas": json.loads(r["granted_areas"]),
                "totp_enabled": bool(r["totp_enabled"]), "created_at": r["created_at"],
                "updated_at": r["updated_at"],
                "restricted": bool(subj["restricted"]) if subj else False,
                "presence_objection": bool(subj["presence_objection"]) if subj else False,
                "sign_ins": [{"ts": x["ts"], "address": x["address"], "ok": bool(x["ok"]),
                              "reason": x["reason"]} for x in logins],
            }

    async def _devices(self) -> AsyncIterator[dict[str, Any]]:
        ids = set(await self.device_ids())
        states: dict[str, dict[str, Any]] = {}
        async for r in self._iter("SELECT * FROM states"):
            if r["device_id"] in ids:
                states.setdefault(r["device_id"], {})[r["attribute"]] = {
                    "value": json.loads(r["value"]), "last_changed": r["last_changed"],
                    "last_updated": r["last_updated"]}
        for r in await self._all("SELECT * FROM devices ORDER BY id"):
            if r["id"] not in ids:
                continue
            yield {
                "id": r["id"], "name": r["name"], "integration": r["integration"],
                "did": r["did"], "mac": r["mac"], "model": r["model"],
                "manufacturer": r["manufacturer"], "fw_version": r["fw_version"],
                "transport": r["transport"], "area": r["area"],
                "restricted": bool(r["restricted"]), "scope": json.loads(r["scope"] or "{}"),
                "created_at": r["created_at"], "updated_at": r["updated_at"],
                "state": states.get(r["id"], {}),
            }

    async def _state_history(self) -> AsyncIterator[dict[str, Any]]:
        for device_id in await self.device_ids():
            # merged rows in index order, then the staged ones (recorded after them): two
            # streams, no sort of a whole device's history in memory
            for table, order in (("history", "ts, id"), ("history_recent", "id")):
                async for r in self._iter(
                    f"SELECT attribute, value, ts FROM {table} WHERE device_id = ? "
                    f"ORDER BY {order}", (device_id,),
                ):
                    yield {"device_id": device_id, "attribute": r["attribute"],
                           "value": json.loads(r["value"]), "ts": r["ts"]}

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        ids = set(await self.device_ids())
        async for r in self._iter("SELECT device_id, event_type, data, ts FROM events "
                                  "ORDER BY ts, id"):
            if r["device_id"] is None and not self.owner:
                continue
            if r["device_id"] is not None and r["device_id"] not in ids:
                continue
            yield {"device_id": r["device_id"], "event_type": r["event_type"],
                   "data": json.loads(r["data"]), "ts": r["ts"]}

    async def _automations(self) -> AsyncIterator[dict[str, Any]]:
        if self.who.role < Role.ADMIN or "automations" not in await self._tables_present():
            return
        enabled: dict[str, bool] = {}
        if "automation_enabled" in await self._tables_present():
            enabled = {r["id"]: bool(r["enabled"])
                       for r in await self._all("SELECT * FROM automation_enabled")}
        for r in await self._all("SELECT * FROM automations ORDER BY id"):
            try:
                definition = json.loads(r["definition"])
            except ValueError:
                definition = r["definition"]
            yield {"id": r["id"], "definition": definition, "enabled": enabled.get(r["id"]),
                   "created_at": r["created_at"], "updated_at": r["updated_at"]}

    async def _consents(self) -> AsyncIterator[dict[str, Any]]:
        sql = "SELECT * FROM consent_log"
        params: tuple[Any, ...] = ()
        if not self.owner:
            sql += " WHERE by_user = ?"
            params = (self.who.user_id,)
        for r in await self._all(sql + " ORDER BY id", params):
            if r["purpose"] in PURPOSES:
                yield {"purpose": r["purpose"], "action": r["action"],
                       "notice_version": r["notice_version"], "by": r["by_user"],
                       "ts": r["ts"]}

    async def _homekit_bridge(self) -> AsyncIterator[dict[str, Any]]:
        if "homekit_bridge" not in await self._tables_present():
            return
        ids = set(await self.device_ids())
        for r in await self._all("SELECT * FROM homekit_bridge ORDER BY aid"):
            if r["device_id"] in ids:
                yield {"device_id": r["device_id"], "aid": r["aid"], "source": r["source"],
                       "added_at": r["added_at"]}

    async def _audit_log(self) -> AsyncIterator[dict[str, Any]]:
        if "audit" not in await self._tables_present():
            return
        sql = "SELECT id, ts, actor, action, target, details, hash FROM audit"
        params: tuple[Any, ...] = ()
        if not self.owner:
            sql += " WHERE actor = ? OR target = ?"
            params = (self.who.user_id, self.who.user_id)
        async for r in self._iter(sql + " ORDER BY id", params):
            yield {"id": r["id"], "ts": r["ts"], "actor": r["actor"], "action": r["action"],
                   "target": r["target"], "details": json.loads(r["details"] or "{}"),
                   "hash": r["hash"]}


# -- plumbing --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _snapshot(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """A read-only connection inside one read transaction: the export sees one moment."""
    conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute("PRAGMA query_only = ON")
        await conn.execute("BEGIN")
        yield conn
    finally:
        with contextlib.suppress(sqlite3.Error):
            await conn.execute("ROLLBACK")
        await conn.close()


class _Buffer:
    """A non-seekable file for ZipFile: collects what it writes until drained."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None


async def _drain(buf: _Buffer, sink: Sink) -> int:
    if not buf.parts:
        return 0
    data = b"".join(buf.parts)
    buf.parts.clear()
    await sink(data)
    return len(data)


async def _batched(items: AsyncIterator[dict[str, Any]], n: int
                   ) -> AsyncIterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def _open_private(path: Path) -> BinaryIO:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _discard(fh: BinaryIO, tmp: Path) -> None:
    fh.close()
    tmp.unlink(missing_ok=True)


def _commit(fh: BinaryIO, tmp: Path, path: Path) -> None:
    fh.close()
    tmp.replace(path)
