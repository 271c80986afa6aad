"""`uone-hub vault rotate|set|list|delete`: the encrypted credential vault.

`set` reads the value from standard input (never the command line, which `ps` and shell
history show) and works whether the hub runs or not: like the hub it takes the vault lock
shared (SQLite WAL for the write), so only a rotation excludes it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from hub.cli import EXIT_OK, CliError, command, config_arg, load_or_exit, read_secret


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vault", help="manage the encrypted credential vault")
    vsub = p.add_subparsers(dest="vault_command", metavar="ACTION")
    vsub.required = True
    r = vsub.add_parser(
        "rotate",
        help="re-encrypt every vault entry under a new hub key (stop the hub first)",
    )
    config_arg(r)
    r.set_defaults(func=_cmd_rotate)

    s = vsub.add_parser(
        "set", help="store a secret the config names (e.g. cloud.password_secret); the value "
        "is read from standard input (all of it, one trailing newline dropped) or asked for")
    config_arg(s)
    s.add_argument("name", help="the name the config uses")
    s.set_defaults(func=command(_cmd_set))

    s = vsub.add_parser("list", help="named secrets: names and dates, never values")
    config_arg(s)
    s.set_defaults(func=command(_cmd_list))

    s = vsub.add_parser("delete", help="delete a named secret")
    config_arg(s)
    s.add_argument("name")
    s.set_defaults(func=command(_cmd_delete))


def _cmd_rotate(args: argparse.Namespace) -> int:
    from hub.hub import DB_FILENAME
    from hub.vault import rotate

    loaded = load_or_exit(args.config)
    state_dir = loaded.state_dir
    old, new, count = rotate(state_dir / DB_FILENAME, state_dir)
    print(f"re-encrypted {count} entr{'y' if count == 1 else 'ies'}: key {old} -> {new}")
    return EXIT_OK


async def _cmd_set(loaded: Any, args: argparse.Namespace) -> int:
    from hub.namedsecrets import check_name

    check_name(args.name)  # before asking for a value
    value = read_secret("value", flag="vault set", from_stdin=not _tty(),
                        confirm=True, whole_input=True)
    async with _secrets(loaded) as secrets:
        info, created = await secrets.set(args.name, value, "cli")
    used = f" (used by {', '.join(info.used_by)})" if info.used_by else \
        " (no config key names it yet)"
    print(f"{'stored' if created else 'replaced'} secret {info.name}{used}")
    if info.used_by:
        print("a running hub reads it at its next connection; restart it "
              "(systemctl restart uone-hub) to use it now", file=sys.stderr)
    return EXIT_OK


async def _cmd_list(loaded: Any, args: argparse.Namespace) -> int:
    async with _secrets(loaded) as secrets:
        items = await secrets.entries()
        refs = await secrets.references()
    print(f"{'NAME':<32} {'UPDATED':<17} USED BY")
    for s in items:
        updated = time.strftime("%Y-%m-%d %H:%M", time.gmtime(s.updated_at))
        print(f"{s.name:<32} {updated:<17} {', '.join(s.used_by) or '-'}")
    for ref in refs:
        if not ref["set"]:
            print(f"missing: {ref['key']} names {ref['name']!r}; "
                  f"set it with: uone-hub vault set {ref['name']} -c CONFIG", file=sys.stderr)
    return EXIT_OK


async def _cmd_delete(loaded: Any, args: argparse.Namespace) -> int:
    async with _secrets(loaded) as secrets:
        await secrets.delete(args.name, "cli")
    print(f"deleted secret {args.name}")
    return EXIT_OK


@contextlib.asynccontextmanager
async def _secrets(loaded: Any) -> AsyncIterator[Any]:
    """The named secrets of this config's vault (a running hub shares its lock)."""
    import asyncio

    from hub.cli import offline_database
    from hub.clock import SystemClock
    from hub.namedsecrets import NamedSecrets
    from hub.vault import Vault, credential_path, key_path

    state = loaded.state_dir
    if (not key_path(state).exists() and credential_path() is None
            and await asyncio.to_thread(_hub_started, state)):
        # A hub that started without a key file has its key as a systemd credential: a new
        # key file made here would lock that hub out of its own vault at its next start.
        raise CliError(f"no vault key at {key_path(state)}: the hub's key is a systemd "
                       "credential; set the secret in the dashboard (or PUT "
                       "/api/vault/secrets/NAME) instead")
    async with offline_database(loaded) as (db, audit):
        vault = Vault(db, state, SystemClock())
        await vault.open()
        try:
            yield NamedSecrets(vault, audit, loaded.config)
        finally:
            vault.close()


def _hub_started(state: Any) -> bool:
    """Whether a hub has run on this state directory (it writes its id at every start; the
    CLI's own commands do not)."""
    from hub.provisioning.service import HUB_ID_FILE

    return bool((state / HUB_ID_FILE).exists())


def _tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()
