"""`uone-hub export`, `uone-hub audit verify`, `uone-hub backup create|restore`.

They work on the state directory's database whether the hub runs or not (SQLite WAL; reads
use their own snapshot). Restore needs the hub stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hub.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    CliError,
    command,
    config_arg,
    offline_database,
    read_secret,
)


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export personal data: a ZIP of JSON files + schemas")
    config_arg(p)
    p.add_argument("-o", "--output", required=True, help="ZIP file to write")
    p.add_argument("--user", help="export only this user's data (default: whole household)")
    p.set_defaults(func=_sync(_export))

    audit = sub.add_parser("audit", help="the audit log")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    p = asub.add_parser("verify", help="check the audit log's hash chain (exit 1 if broken)")
    config_arg(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_sync(_audit_verify))

    backup = sub.add_parser("backup", help="encrypted backups of the whole hub")
    bsub = backup.add_subparsers(dest="backup_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("create", help="write an encrypted backup (database, keys, config)")
    config_arg(p)
    p.add_argument("-o", "--output", required=True, help="backup file to write")
    p.add_argument("--passphrase-stdin", action="store_true",
                   help="read the passphrase from the first line of standard input")
    p.set_defaults(func=command(_backup_create))
    p = bsub.add_parser("restore", help="restore a backup into this config's state directory "
                        "(stop the hub first)")
    config_arg(p)
    p.add_argument("file", help="backup file")
    p.add_argument("--passphrase-stdin", action="store_true",
                   help="read the passphrase from the first line of standard input")
    p.add_argument("--force", action="store_true",
                   help="replace a state directory that already holds a hub")
    p.set_defaults(func=command(_backup_restore))


def _sync(fn: Callable[[Any, argparse.Namespace], Awaitable[int]]
          ) -> Callable[[argparse.Namespace], int]:
    async def with_db(loaded: Any, args: argparse.Namespace) -> int:
        async with offline_database(loaded) as (db, audit):
            return await fn(_Ctx(db, audit, loaded), args)

    return command(with_db)


class _Ctx:
    def __init__(self, db: Any, audit: Any, loaded: Any) -> None:
        self.db, self.audit, self.loaded = db, audit, loaded


async def _export(ctx: _Ctx, args: argparse.Namespace) -> int:
    import time

    from hub import __version__
    from hub.auth.principal import Principal, Role
    from hub.errors import NotFound
    from hub.privacy.consent import read_consents
    from hub.privacy.export import ExportSource, export_to_file

    db, cfg = ctx.db, ctx.loaded.config
    who = Principal("cli", "cli (local administrator)", Role.OWNER)
    if args.user:
        row = await db.fetchone("SELECT * FROM users WHERE username = ?", (args.user,))
        if row is None:
            raise NotFound(f"no user {args.user!r}")
        who = Principal(row["id"], row["username"], Role(row["role"]),
                        granted_devices=frozenset(json.loads(row["granted_devices"])),
                        granted_areas=frozenset(json.loads(row["granted_areas"])))
        if who.role >= Role.OWNER:
            who = Principal(who.user_id, who.username, Role.ADMIN)  # own scope only
    consents, _ = await read_consents(db, cfg.privacy)  # the CLI only looks
    location = None
    if "location" in consents and consents["location"].allowed:
        loc = await db.fetchone("SELECT * FROM privacy_location WHERE id = 1")
        if loc is not None:
            location = {"latitude": loc["latitude"], "longitude": loc["longitude"],
                        "elevation": loc["elevation"]}
    source = ExportSource(db.path, __version__, cfg.privacy.notice_version,
                          cfg.location.time_zone, location, [], time.time(),
                          cfg.privacy.export_batch)
    out = Path(args.output)
    stats = await export_to_file(source, who, out)
    await ctx.audit.record(who.user_id, "privacy.export", who.user_id,
                           {"rows": stats.rows, "to": "file", "via": "cli"})
    print(f"{out}: {stats.files} files, {stats.rows} records, {stats.bytes} bytes"
          " (Wi-Fi networks are listed by the running hub's API export)")
    return EXIT_OK


async def _audit_verify(ctx: _Ctx, args: argparse.Namespace) -> int:
    from hub.audit import verify_chain

    report = await verify_chain(ctx.db)
    if args.json:
        print(json.dumps(report.to_json()))
    elif report.ok:
        print(f"audit log intact: {report.checked} entries, head {report.head[:16]}")
    else:
        print(f"audit log BROKEN at entry {report.first_bad_id}: {report.reason} "
              f"({report.checked} entries before it verified)", file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILURE


async def _backup_create(loaded: Any, args: argparse.Namespace) -> int:
    from hub import __version__
    from hub.hub import DB_FILENAME
    from hub.privacy.backup import check_passphrase, create_backup

    passphrase = _passphrase(args, confirm=True)
    check_passphrase(passphrase)
    db_path = loaded.state_dir / DB_FILENAME
    if not db_path.exists():
        raise CliError(f"no hub database at {db_path}")
    out = Path(args.output)
    tmp = out.with_name(out.name + ".partial")

    def work() -> Any:
        import os

        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            info = create_backup(db_path, loaded.state_dir, loaded.path, fh, passphrase,
                                 __version__)
        tmp.replace(out)
        return info

    try:
        info = await asyncio.to_thread(work)
    finally:
        tmp.unlink(missing_ok=True)
    async with offline_database(loaded) as (_db, audit):
        await audit.record("cli", "backup.create", None, {"via": "cli"})
    print(f"{out}: encrypted backup of {len(info.files)} files; keep the passphrase, "
          "it cannot be recovered")
    return EXIT_OK


async def _backup_restore(loaded: Any, args: argparse.Namespace) -> int:
    from hub.hub import DB_FILENAME
    from hub.privacy.backup import refuse_if_running, restore_backup

    state = loaded.state_dir
    await asyncio.to_thread(refuse_if_running, state)  # before asking for the passphrase
    if (state / DB_FILENAME).exists() and not args.force:
        raise CliError(f"{state} already holds a hub; stop it and add --force to replace it")
    path = Path(args.file)
    if not await asyncio.to_thread(path.is_file):
        raise CliError(f"no backup file {path}")
    passphrase = _passphrase(args, confirm=False)
    config_out = loaded.path.with_name(loaded.path.name + ".restored")

    def work() -> Any:
        with path.open("rb") as fh:
            return restore_backup(fh, passphrase, state, config_out)

    info = await asyncio.to_thread(work)
    print(f"restored {len(info.files)} files into {state} (backup of {info.created:.0f}, "
          f"hub {info.hub_version}); its config is in {config_out}")
    return EXIT_OK


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> str:
    return read_secret("backup passphrase", flag="--passphrase-stdin",
                       from_stdin=args.passphrase_stdin, confirm=confirm)
