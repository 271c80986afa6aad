"""`uone-hub user ...`, `uone-hub token ...`, `uone-hub status`.

They work on the database in the state directory whether the hub is stopped or running
(SQLite WAL; the running hub notices account changes within a second).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hub.cli import EXIT_OK, command, config_arg, offline_database, read_secret


def register(sub: Any) -> None:
    user = sub.add_parser("user", help="manage accounts")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION")
    usub.required = True

    p = usub.add_parser("add", help="create an account (the first owner ends onboarding)")
    config_arg(p)
    p.add_argument("name")
    p.add_argument("--role", default="member", help="owner, admin, member or guest")
    p.add_argument("--minor", action="store_true", help="the user is a minor")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=_sync(_user_add))

    p = usub.add_parser("list", help="list accounts")
    config_arg(p)
    p.set_defaults(func=_sync(_user_list))

    p = usub.add_parser("delete", help="delete an account and end its sessions")
    config_arg(p)
    p.add_argument("name")
    p.set_defaults(func=_sync(_user_delete))

    p = usub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    config_arg(p)
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=_sync(_user_passwd))

    token = sub.add_parser("token", help="long-lived API tokens for scripts")
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION")
    tsub.required = True

    p = tsub.add_parser("create", help="create a token; prints it once")
    config_arg(p)
    p.add_argument("--user", required=True, help="username the token acts as")
    p.add_argument("--name", required=True, help="what the token is for")
    p.add_argument("--expires-in", type=float, default=None, help="seconds (default: never)")
    p.set_defaults(func=_sync(_token_create))

    p = tsub.add_parser("list", help="list live tokens (never their values)")
    config_arg(p)
    p.add_argument("--user", default=None)
    p.set_defaults(func=_sync(_token_list))

    p = tsub.add_parser("revoke", help="revoke a token by id")
    config_arg(p)
    p.add_argument("id")
    p.set_defaults(func=_sync(_token_revoke))

    p = sub.add_parser("status", help="version, TLS fingerprint, accounts")
    config_arg(p)
    p.set_defaults(func=_sync(_status))


def _sync(fn: Callable[..., Awaitable[int]]) -> Callable[[argparse.Namespace], int]:
    async def with_accounts(loaded: Any, args: argparse.Namespace) -> int:
        async with _accounts(loaded) as auth:
            return await fn(auth, loaded, args)

    return command(with_accounts)


@contextlib.asynccontextmanager
async def _accounts(loaded: Any) -> AsyncIterator[Any]:
    from hub.auth.service import AccountService
    from hub.clock import SystemClock

    async with offline_database(loaded) as (db, audit):
        auth = AccountService(db, SystemClock(), loaded.config.auth, audit, loaded.state_dir)
        await auth.load()
        yield auth


def _read_password(args: argparse.Namespace) -> str:
    return read_secret("password", flag="--password-stdin", from_stdin=args.password_stdin,
                       confirm=True)


def _user_by_name(auth: Any, name: str) -> Any:
    from hub.errors import NotFound

    user = auth.find_user(name)
    if user is None:
        raise NotFound(f"no user {name!r}")
    return user


async def _user_add(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    from hub.auth.principal import Role
    from hub.errors import ValidationError

    try:
        role = Role.parse(args.role)
    except ValueError as exc:
        raise ValidationError("role", str(exc)) from None
    password = _read_password(args)
    user = await auth.create_user(args.name, password, role, is_minor=args.minor, actor="cli")
    if role == Role.OWNER:
        await auth.finish_onboarding()
    print(f"created {role.label} {user.username} (id {user.id})")
    return EXIT_OK


async def _user_list(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    print(f"{'USERNAME':<24} {'ROLE':<7} {'2FA':<4} {'MINOR':<6} ID")
    for u in auth.users():
        print(f"{u.username:<24} {u.role.label:<7} {'on' if u.totp_enabled else 'off':<4} "
              f"{'yes' if u.is_minor else 'no':<6} {u.id}")
    return EXIT_OK


async def _user_delete(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    user = _user_by_name(auth, args.name)
    await auth.delete_user(user.id, actor="cli")
    print(f"deleted {user.username}")
    return EXIT_OK


async def _user_passwd(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    user = _user_by_name(auth, args.name)
    await auth.set_password(user.id, _read_password(args), actor="cli")
    print(f"password changed for {user.username}; their sessions ended")
    return EXIT_OK


async def _token_create(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    from hub.errors import ValidationError

    if args.expires_in is not None and not 60 <= args.expires_in <= 10 * 365 * 86400:
        raise ValidationError("expires-in", "must be 60 seconds to 10 years")
    user = _user_by_name(auth, args.user)
    raw, rec = await auth.create_token(user.id, args.name, args.expires_in, actor="cli")
    print(raw)
    print(f"token id {rec.id} for {user.username}; shown once, store it now", file=sys.stderr)
    return EXIT_OK


async def _token_list(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    user_id = _user_by_name(auth, args.user).id if args.user else None
    names = {u.id: u.username for u in auth.users()}
    print(f"{'ID':<32} {'KIND':<7} {'USER':<16} {'NAME':<20} EXPIRES")
    for t in auth.tokens(user_id):
        expires = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.expires_at)) \
            if t.expires_at else "never"
        print(f"{t.id:<32} {t.kind:<7} {names.get(t.user_id, '?'):<16} "
              f"{(t.name or '-'):<20} {expires}")
    return EXIT_OK


async def _token_revoke(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    await auth.revoke_token(args.id, actor="cli")
    print(f"revoked {args.id}")
    return EXIT_OK


async def _status(auth: Any, loaded: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub import __version__, tls

    cfg = loaded.config.api
    cert = Path(cfg.tls_cert) if cfg.tls_cert else loaded.state_dir / tls.CERT_FILE
    fingerprint, pin = await asyncio.to_thread(_fingerprint, cert)
    https = not (tls.is_loopback(cfg.host) and not cfg.tls_cert) and not cfg.insecure_http
    users = auth.users()
    print(f"version:          {__version__}")
    print(f"state directory:  {loaded.state_dir}")
    print(f"api:              {'https' if https else 'http'}://{cfg.host}:{cfg.port}")
    print(f"tls certificate:  {cert if cert.exists() else 'not created yet (first start)'}")
    print(f"tls fingerprint:  {fingerprint or '-'} (SHA-256)")
    print(f"tls public key:   {pin or '-'} (curl --pinnedpubkey; kept across renewals)")
    print(f"users:            {len(users)} "
          f"({sum(1 for u in users if u.role.label == 'owner')} owner)")
    if auth.needs_owner:
        print(f"onboarding:       pending; code in {auth.onboarding_path}")
    return EXIT_OK


def _fingerprint(cert: Any) -> tuple[str | None, str | None]:
    """(certificate fingerprint, public key pin), or Nones before the first start."""
    from hub import tls

    try:
        return tls.fingerprint(cert), tls.spki_pin(cert)
    except (OSError, ValueError):
        return None, None
