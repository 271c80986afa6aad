"""`uone-hub vault rotate`: re-encrypt the credential vault under a new hub key."""

from __future__ import annotations

import argparse
import sys

from hub.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, load_or_exit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("vault", help="manage the encrypted credential vault")
    vsub = p.add_subparsers(dest="vault_command", metavar="ACTION")
    vsub.required = True
    r = vsub.add_parser(
        "rotate",
        help="re-encrypt every vault entry under a new hub key (stop the hub first)",
    )
    r.add_argument("-c", "--config", required=True, help="path to config.yaml")
    r.set_defaults(func=_cmd_rotate)


def _cmd_rotate(args: argparse.Namespace) -> int:
    from hub.hub import DB_FILENAME
    from hub.vault import VaultError, VaultLocked, rotate

    loaded = load_or_exit(args.config)
    state_dir = loaded.state_dir
    try:
        old, new, count = rotate(state_dir / DB_FILENAME, state_dir)
    except VaultLocked as exc:
        print(f"vault rotate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VaultError as exc:
        print(f"vault rotate: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"re-encrypted {count} entr{'y' if count == 1 else 'ies'}: key {old} -> {new}")
    return EXIT_OK
