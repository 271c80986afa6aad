"""Accounts, sessions and tokens: `hub.auth`.

Everything a request needs is answered from memory: the token cache maps SHA-256(token) to
its record, so checking a token is a hash and a dict lookup. The database holds only hashes.
Changes made by another process (the CLI while the hub runs) bump a generation number in
the database; the service polls it once a second and reloads, so a `uone-hub token revoke`
takes effect within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hub.audit import AuditLog
from hub.auth import passwords, totp
from hub.auth.config import AuthConfig
from hub.auth.principal import Principal, Role
from hub.auth.throttle import LoginThrottle
from hub.clock import Clock
from hub.errors import AuthError, Conflict, NotFound, ValidationError
from hub.storage import Database, Schema, storable

_LOG = logging.getLogger(__name__)

ONBOARDING_FILE = "onboarding-code"
TOKEN_PREFIX = "uh_"
RECOVERY_CODES = 10
POLL_INTERVAL = 1.0
PRUNE_EVERY = 300  # polls
PRUNE_AFTER = 7 * 86400.0  # expired token rows kept a week (refresh reuse detection)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

SCHEMA = Schema(
    "auth",
    (
        """
        CREATE TABLE users(
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            role INTEGER NOT NULL,
            password TEXT NOT NULL,
            is_minor INTEGER NOT NULL DEFAULT 0,
            granted_devices TEXT NOT NULL DEFAULT '[]',
            granted_areas TEXT NOT NULL DEFAULT '[]',
            totp_secret TEXT,
            totp_enabled INTEGER NOT NULL DEFAULT 0,
            totp_last_step INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE recovery_codes(
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            code_hash TEXT NOT NULL,
            used_at REAL,
            PRIMARY KEY(user_id, code_hash)
        );
        CREATE TABLE tokens(
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            name TEXT,
            family TEXT,
            created_at REAL NOT NULL,
            expires_at REAL,
            last_used_at REAL,
            revoked_at REAL
        );
        CREATE INDEX tokens_user ON tokens(user_id);
        CREATE TABLE logins(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id TEXT,
            username TEXT NOT NULL,
            address TEXT,
            ts REAL NOT NULL,
            ok INTEGER NOT NULL,
            reason TEXT
        );
        CREATE INDEX logins_user ON logins(user_id, ts);
        CREATE TABLE auth_meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO auth_meta(key, value) VALUES('generation', 0);
        """,
    ),
)


class TotpRequired(AuthError):
    """The password was right; the account also needs its two-step code."""

    code = "totp_required"


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: Role
    password: str = field(repr=False)
    is_minor: bool = False
    granted_devices: frozenset[str] = frozenset()
    granted_areas: frozenset[str] = frozenset()
    totp_secret: str | None = field(default=None, repr=False)
    totp_enabled: bool = False
    totp_last_step: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """What the API shows: never the password hash or the TOTP secret."""
        return {
            "id": self.id, "username": self.username, "role": self.role.label,
            "is_minor": self.is_minor, "granted_devices": sorted(self.granted_devices),
            "granted_areas": sorted(self.granted_areas), "totp_enabled": self.totp_enabled,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    user_id: str
    kind: str  # "access" | "refresh" | "long"
    hash: str = field(repr=False)
    name: str | None = None
    family: str | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    last_used_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, "kind": self.kind, "name": self.name,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "last_used_at": self.last_used_at}


@dataclass(frozen=True, slots=True)
class Session:
    """What a sign-in returns; the raw tokens exist only here, never stored."""

    user: User
    access_token: str
    refresh_token: str
    expires_in: float

    def to_json(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": "Bearer", "expires_in": self.expires_in,
                "user": self.user.to_json()}


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token() -> str:
    """256 random bits, URL-safe, with a prefix secret scanners can recognise."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class AccountService:
    """Users, passwords, two-step verification, sessions, tokens and sign-in history."""

    def __init__(self, db: Database, clock: Clock, config: AuthConfig, audit: AuditLog,
                 state_dir: Path) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.audit = audit
        self.state_dir = state_dir
        self.throttle = LoginThrottle(
            clock, max_failures=config.max_failures, base=config.lockout_base,
            ceiling=config.lockout_max, address_max_failures=config.address_max_failures,
        )
        self._users: dict[str, User] = {}
        self._tokens: dict[str, TokenRecord] = {}  # hash -> record (live tokens only)
        self._principals: dict[str, Principal] = {}  # hash -> principal
        self._used: dict[str, float] = {}  # token id -> last use, flushed in batches
        self._revoke_listeners: dict[str, list[Callable[[], None]]] = {}
        self._user_listeners: dict[str, list[Callable[[User], None]]] = {}
        self._generation = 0
        self._epoch = 0  # bumped by every in-process write; a reload racing one is dropped
        self._dummy_hash: str | None = None
        self._onboarding_code: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self._unhook: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Read accounts and live tokens (the CLI uses this alone, without start())."""
        await self._reload()

    async def start(self) -> None:
        await self._reload()
        self._unhook = self.db.add_flush_hook(self._flush_last_used)
        self._poller = asyncio.create_task(self._poll(), name="auth-generation-poll")
        if self.needs_owner:
            await self._issue_onboarding_code()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._unhook is not None:
            self._unhook()
            self._unhook = None

    # -- requests --------------------------------------------------------------------------

    def authenticate(self, raw: str) -> Principal:
        """The principal of a bearer token; AuthError if unknown, revoked or expired."""
        digest = token_hash(raw)
        principal = self._principals.get(digest)
        rec = self._tokens.get(digest)
        if rec is None or rec.kind == "refresh":
            raise AuthError("invalid or revoked token")
        now = self.clock.time()
        if rec.expires_at is not None and rec.expires_at <= now:
            raise AuthError("token expired")
        self._used[rec.id] = now
        if principal is None:
            user = self._users.get(rec.user_id)
            if user is None:
                raise AuthError("invalid or revoked token")
            principal = self._principals[digest] = _principal(user, rec.id)
        return principal

    async def resolve(self, raw: str) -> Principal:
        """`authenticate`, but a token missing from the cache is looked up in the database
        (it may have just been made by the CLI in another process)."""
        try:
            return self.authenticate(raw)
        except AuthError:
            if token_hash(raw) in self._tokens:
                raise
        row = await self.db.fetchone(
            "SELECT 1 FROM tokens WHERE hash=? AND revoked_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > ?)", (token_hash(raw), self.clock.time()))
        if row is None:
            raise AuthError("invalid or revoked token")
        await self._reload()
        return self.authenticate(raw)

    def on_revoke(self, token_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` once when this token stops being valid; returns unsubscribe."""
        bucket = self._revoke_listeners.setdefault(token_id, [])
        bucket.append(callback)

        def unsubscribe() -> None:
            if callback in bucket:
                bucket.remove(callback)
            if not bucket:
                self._revoke_listeners.pop(token_id, None)

        return unsubscribe

    def on_user_change(self, user_id: str,
                       callback: Callable[[User], None]) -> Callable[[], None]:
        """Call `callback(user)` when this user's role, grants or minor flag change."""
        bucket = self._user_listeners.setdefault(user_id, [])
        bucket.append(callback)

        def unsubscribe() -> None:
            if callback in bucket:
                bucket.remove(callback)
            if not bucket:
                self._user_listeners.pop(user_id, None)

        return unsubscribe

    # -- users -----------------------------------------------------------------------------

    @property
    def needs_owner(self) -> bool:
        return not any(u.role == Role.OWNER for u in self._users.values())

    def users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.username.lower())

    def user(self, user_id: str) -> User:
        try:
            return self._users[user_id]
        except KeyError:
            raise NotFound(f"no user {user_id!r}") from None

    def find_user(self, username: str) -> User | None:
        low = username.lower()
        for u in self._users.values():
            if u.username.lower() == low:
                return u
        return None

    async def create_user(self, username: str, password: str, role: Role, *,
                          is_minor: bool = False, granted_devices: frozenset[str] = frozenset(),
                          granted_areas: frozenset[str] = frozenset(),
                          actor: str | None = None) -> User:
        _check_username(username)
        _check_password(password)
        if self.find_user(username) is not None:
            raise Conflict(f"username {username!r} is taken")
        pw = await asyncio.to_thread(passwords.hash_password, password, self.config.scrypt_n)
        now = self.clock.time()
        user = User(uuid.uuid4().hex, username, role, pw, is_minor, granted_devices,
                    granted_areas, created_at=now, updated_at=now)
        if self.find_user(username) is not None:  # taken while we hashed
            raise Conflict(f"username {username!r} is taken")
        await self._write([
            ("INSERT INTO users(id, username, role, password, is_minor, granted_devices, "
             "granted_areas, created_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?)",
             (user.id, username, int(role), pw, int(is_minor),
              json.dumps(sorted(granted_devices)), json.dumps(sorted(granted_areas)), now, now)),
        ])
        self._users[user.id] = user
        await self.audit.record(actor, "user.create", user.id,
                                {"username": username, "role": role.label, "is_minor": is_minor})
        return user

    async def update_user(self, user_id: str, *, role: Role | None = None,
                          is_minor: bool | None = None,
                          granted_devices: frozenset[str] | None = None,
                          granted_areas: frozenset[str] | None = None,
                          actor: str | None = None) -> User:
        user = self.user(user_id)
        changes: dict[str, Any] = {}
        if role is not None and role != user.role:
            if user.role == Role.OWNER and self._owner_count() == 1:
                raise Conflict("the last owner cannot be demoted; make another owner first")
            changes["role"] = role
        if is_minor is not None:
            changes["is_minor"] = is_minor
        if granted_devices is not None:
            changes["granted_devices"] = granted_devices
        if granted_areas is not None:
            changes["granted_areas"] = granted_areas
        if not changes:
            return user
        new = replace(user, updated_at=self.clock.time(), **changes)
        await self._write([(
            "UPDATE users SET role=?, is_minor=?, granted_devices=?, granted_areas=?, "
            "updated_at=? WHERE id=?",
            (int(new.role), int(new.is_minor), json.dumps(sorted(new.granted_devices)),
             json.dumps(sorted(new.granted_areas)), new.updated_at, user_id),
        )])
        self._users[user_id] = new
        self._principals.clear()
        for cb in list(self._user_listeners.get(user_id, ())):
            try:
                cb(new)
            except Exception:
                _LOG.exception("user change listener failed")
        details = {k: (v.label if isinstance(v, Role) else
                       sorted(v) if isinstance(v, frozenset) else v) for k, v in changes.items()}
        await self.audit.record(actor, "user.update", user_id, details)
        return new

    async def delete_user(self, user_id: str, *, actor: str | None = None) -> None:
        user = self.user(user_id)
        if user.role == Role.OWNER and self._owner_count() == 1:
            raise Conflict("the last owner cannot be deleted")
        await self._write([("DELETE FROM users WHERE id=?", (user_id,))])
        self._users.pop(user_id, None)
        self._drop_tokens([r for r in self._tokens.values() if r.user_id == user_id])
        await self.audit.record(actor, "user.delete", user_id, {"username": user.username})

    async def set_password(self, user_id: str, password: str, *, actor: str | None = None,
                           keep_token: str | None = None) -> None:
        """New password; every session of the user but `keep_token` ends."""
        user = self.user(user_id)
        _check_password(password)
        pw = await asyncio.to_thread(passwords.hash_password, password, self.config.scrypt_n)
        now = self.clock.time()
        others = [r for r in self._tokens.values()
                  if r.user_id == user_id and r.id != keep_token and r.kind != "long"]
        await self._write(
            [("UPDATE users SET password=?, updated_at=? WHERE id=?", (pw, now, user_id))]
            + [("UPDATE tokens SET revoked_at=? WHERE id=?", (now, r.id)) for r in others]
        )
        self._users[user_id] = replace(user, password=pw, updated_at=now)
        self._drop_tokens(others)
        await self.audit.record(actor, "user.password", user_id, {"sessions_ended": len(others)})

    async def check_password(self, user_id: str, password: str) -> bool:
        user = self.user(user_id)
        return await asyncio.to_thread(passwords.verify_password, password, user.password)

    # -- two-step verification -------------------------------------------------------------

    async def begin_totp(self, user_id: str, *, actor: str | None = None) -> str:
        """Start enrolment: a new secret, returned as an otpauth:// URI (not yet enforced)."""
        user = self.user(user_id)
        if user.totp_enabled:
            raise Conflict("two-step verification is already on; disable it first")
        secret = totp.encode_secret(totp.new_secret())
        await self._write([("UPDATE users SET totp_secret=?, totp_last_step=0 WHERE id=?",
                            (secret, user_id))])
        self._users[user_id] = replace(user, totp_secret=secret, totp_last_step=0)
        await self.audit.record(actor, "totp.enrol", user_id)
        return totp.provisioning_uri(totp.decode_secret(secret), user.username)

    async def confirm_totp(self, user_id: str, code: str, *,
                           actor: str | None = None) -> list[str]:
        """Turn two-step on with a first good code; return ten one-time recovery codes."""
        user = self.user(user_id)
        if user.totp_enabled:
            raise Conflict("two-step verification is already on")
        if user.totp_secret is None:
            raise Conflict("start enrolment first (POST /api/users/{id}/totp)")
        step = totp.verify(totp.decode_secret(user.totp_secret), code, self.clock.time(), 0)
        if step is None:
            raise ValidationError("code", "wrong or expired code")
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        await self._write(
            [("UPDATE users SET totp_enabled=1, totp_last_step=?, updated_at=? WHERE id=?",
              (step, self.clock.time(), user_id)),
             ("DELETE FROM recovery_codes WHERE user_id=?", (user_id,))]
            + [("INSERT INTO recovery_codes(user_id, code_hash) VALUES(?,?)",
                (user_id, token_hash(_normal_code(c)))) for c in codes]
        )
        self._users[user_id] = replace(user, totp_enabled=True, totp_last_step=step)
        await self.audit.record(actor, "totp.enable", user_id)
        return codes

    async def disable_totp(self, user_id: str, *, actor: str | None = None) -> None:
        user = self.user(user_id)
        if not user.totp_enabled and user.totp_secret is None:
            raise Conflict("two-step verification is not on")
        await self._write([
            ("UPDATE users SET totp_enabled=0, totp_secret=NULL, totp_last_step=0, "
             "updated_at=? WHERE id=?", (self.clock.time(), user_id)),
            ("DELETE FROM recovery_codes WHERE user_id=?", (user_id,)),
        ])
        self._users[user_id] = replace(user, totp_enabled=False, totp_secret=None,
                                       totp_last_step=0)
        await self.audit.record(actor, "totp.disable", user_id)

    # -- sign-in ---------------------------------------------------------------------------

    async def login(self, username: str, password: str, code: str | None,
                    address: str) -> Session:
        """Check credentials (and the two-step code); record the attempt either way."""
        self.throttle.check(username, address)
        user = self.find_user(username)
        stored = user.password if user else await self._dummy()
        ok = await asyncio.to_thread(passwords.verify_password, password, stored)
        if user is None or not ok:
            await self._failed(user, username, address, "bad_credentials")
            raise AuthError("invalid username or password")
        if user.totp_enabled:
            if not code:
                await self._record_login(user, username, address, False, "totp_required")
                raise TotpRequired("two-step verification code required (field 'totp')")
            if not await self._check_second_factor(user, code):
                await self._failed(user, username, address, "bad_totp")
                raise AuthError("wrong two-step verification code")
        self.throttle.succeeded(username, address)
        await self._record_login(user, username, address, True, None)
        await self._audit_sign_in(user.id, "login.ok", user.id, {"address": address})
        return await self._new_session(user)

    async def refresh(self, raw: str) -> Session:
        """Rotate a refresh token: a new pair; the old family ends. Reuse ends everything."""
        digest = token_hash(raw)
        rec = self._tokens.get(digest)
        if rec is None or rec.kind != "refresh":
            row = await self.db.fetchone(
                "SELECT family, user_id FROM tokens WHERE hash=? AND kind='refresh'", (digest,))
            if row is not None and row["family"]:  # a rotated token came back: stolen?
                await self._revoke_family(row["family"], "refresh_reuse")
                await self.audit.record(row["user_id"], "token.reuse_detected", row["family"])
            raise AuthError("invalid or revoked refresh token")
        if rec.expires_at is not None and rec.expires_at <= self.clock.time():
            raise AuthError("refresh token expired")
        user = self.user(rec.user_id)
        await self._revoke_family(rec.family or rec.id, "refreshed", audit=False)
        return await self._new_session(user, family=rec.family)

    async def logout(self, principal: Principal) -> None:
        if principal.token_id is None:
            return
        rec = self._record(principal.token_id)
        if rec is None:
            return
        if rec.family:
            await self._revoke_family(rec.family, "logout", audit=False)
        else:
            await self.revoke_token(rec.id, actor=principal.user_id)
        await self.audit.record(principal.user_id, "logout", principal.user_id)

    async def logins(self, user_id: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self.db.fetchall(
            "SELECT ts, address, ok, reason FROM logins WHERE user_id=? "
            "ORDER BY id DESC LIMIT ?", (user_id, limit))
        return [{"ts": r["ts"], "address": r["address"], "ok": bool(r["ok"]),
                 "reason": r["reason"]} for r in rows]

    # -- tokens ----------------------------------------------------------------------------

    async def create_token(self, user_id: str, name: str, expires_in: float | None = None,
                           *, actor: str | None = None) -> tuple[str, TokenRecord]:
        """A long-lived token for scripts; the raw value is returned once, never stored."""
        self.user(user_id)
        if not name.strip() or len(name) > 100:
            raise ValidationError("name", "must be 1-100 characters")
        now = self.clock.time()
        raw = new_token()
        rec = TokenRecord(uuid.uuid4().hex, user_id, "long", token_hash(raw), name.strip(),
                          None, now, now + expires_in if expires_in else None)
        await self._write([_insert_token(rec)])
        self._tokens[rec.hash] = rec
        await self.audit.record(actor or user_id, "token.create", rec.id,
                                {"user_id": user_id, "name": rec.name, "kind": "long"})
        return raw, rec

    def tokens(self, user_id: str | None = None) -> list[TokenRecord]:
        now = self.clock.time()
        out = [
            replace(r, last_used_at=self._used.get(r.id, r.last_used_at))
            for r in self._tokens.values()
            if (user_id is None or r.user_id == user_id)
            and (r.expires_at is None or r.expires_at > now)
        ]
        return sorted(out, key=lambda r: r.created_at)

    def find_token(self, token_id: str) -> TokenRecord | None:
        return self._record(token_id)

    def token(self, token_id: str) -> TokenRecord:
        rec = self._record(token_id)
        if rec is None:
            raise NotFound(f"no token {token_id!r}")
        return rec

    async def revoke_token(self, token_id: str, *, actor: str | None = None) -> None:
        rec = self.token(token_id)
        await self._write([("UPDATE tokens SET revoked_at=? WHERE id=?",
                            (self.clock.time(), rec.id))])
        self._drop_tokens([rec])
        await self.audit.record(actor, "token.revoke", rec.id,
                                {"user_id": rec.user_id, "kind": rec.kind, "name": rec.name})

    # -- onboarding ------------------------------------------------------------------------

    @property
    def onboarding_path(self) -> Path:
        return self.state_dir / ONBOARDING_FILE

    async def onboard(self, code: str, username: str, password: str, address: str) -> Session:
        """Create the first owner with the one-time code from the log or the state dir."""
        self.throttle.check("<onboarding>", address)
        if not self.needs_owner or self._onboarding_code is None:
            raise Conflict("this hub already has an owner")
        if not passwords.constant_time_equal(_normal_code(code),
                                             _normal_code(self._onboarding_code)):
            self.throttle.failed("<onboarding>", address)
            raise AuthError("wrong onboarding code")
        user = await self.create_user(username, password, Role.OWNER, actor="onboarding")
        await self.finish_onboarding()
        await self.audit.record(user.id, "onboarding.owner_created", user.id,
                                {"address": address})
        return await self._new_session(user)

    async def finish_onboarding(self) -> None:
        self._onboarding_code = None
        await asyncio.to_thread(self.onboarding_path.unlink, missing_ok=True)

    # -- internals -------------------------------------------------------------------------

    async def _issue_onboarding_code(self) -> None:
        raw = secrets.token_bytes(10)
        code = "-".join(_b32(raw)[i:i + 4] for i in range(0, 16, 4))
        self._onboarding_code = code
        await asyncio.to_thread(_write_private, self.onboarding_path, code + "\n")
        _LOG.warning("no owner yet: onboarding code %s (also in %s); "
                     "POST it to /api/onboarding or run `uone-hub user add NAME --role owner`",
                     code, self.onboarding_path)

    async def _new_session(self, user: User, family: str | None = None) -> Session:
        now = self.clock.time()
        family = family or uuid.uuid4().hex
        access_raw, refresh_raw = new_token(), new_token()
        access = TokenRecord(uuid.uuid4().hex, user.id, "access", token_hash(access_raw), None,
                             family, now, now + self.config.access_token_ttl)
        refresh = TokenRecord(uuid.uuid4().hex, user.id, "refresh", token_hash(refresh_raw),
                              None, family, now, now + self.config.refresh_token_ttl)
        # on a full disk the session works from memory; its tokens are stored when space returns
        await self.db.backlog.write("a session's tokens", functools.partial(
            self._write, [_insert_token(access), _insert_token(refresh)]))
        self._tokens[access.hash] = access
        self._tokens[refresh.hash] = refresh
        return Session(user, access_raw, refresh_raw, self.config.access_token_ttl)

    async def _revoke_family(self, family: str, reason: str, audit: bool = True) -> None:
        recs = [r for r in self._tokens.values() if r.family == family]
        await self._write([("UPDATE tokens SET revoked_at=? WHERE family=? AND revoked_at IS NULL",
                            (self.clock.time(), family))])
        self._drop_tokens(recs)
        if audit and recs:
            await self.audit.record(recs[0].user_id, "token.revoke", family,
                                    {"reason": reason, "count": len(recs)})

    def _drop_tokens(self, recs: list[TokenRecord]) -> None:
        for rec in recs:
            self._tokens.pop(rec.hash, None)
            self._principals.pop(rec.hash, None)
            for cb in self._revoke_listeners.pop(rec.id, []):
                try:
                    cb()
                except Exception:
                    _LOG.exception("revocation listener failed")

    def _record(self, token_id: str) -> TokenRecord | None:
        for r in self._tokens.values():
            if r.id == token_id:
                return r
        return None

    async def _check_second_factor(self, user: User, code: str) -> bool:
        assert user.totp_secret is not None
        step = totp.verify(totp.decode_secret(user.totp_secret), code, self.clock.time(),
                           user.totp_last_step)
        if step is not None:
            await self._write([("UPDATE users SET totp_last_step=? WHERE id=?",
                                (step, user.id))])
            self._users[user.id] = replace(user, totp_last_step=step)
            return True
        digest = token_hash(_normal_code(code))
        row = await self.db.fetchone(
            "SELECT 1 FROM recovery_codes WHERE user_id=? AND code_hash=? AND used_at IS NULL",
            (user.id, digest))
        if row is None:
            return False
        await self._write([("UPDATE recovery_codes SET used_at=? WHERE user_id=? AND code_hash=?",
                            (self.clock.time(), user.id, digest))])
        await self.audit.record(user.id, "totp.recovery_code_used", user.id)
        return True

    async def _failed(self, user: User | None, username: str, address: str,
                      reason: str) -> None:
        self.throttle.failed(username, address)
        await self._record_login(user, username, address, False, reason)
        await self._audit_sign_in(user.id if user else None, "login.failed",
                                  user.id if user else None,
                                  {"username": username[:64], "address": address,
                                   "reason": reason})

    async def _record_login(self, user: User | None, username: str, address: str, ok: bool,
                            reason: str | None) -> None:
        # A minor's sign-in address says where they were: not collected (privacy policy).
        where: str | None = None if user is not None and user.is_minor else address
        # signing in needs no disk space: on a full disk the record waits in memory
        await self.db.backlog.write("a sign-in record", functools.partial(
            self.db.write,
            "INSERT INTO logins(user_id, username, address, ts, ok, reason) VALUES(?,?,?,?,?,?)",
            (user.id if user else None, storable(username[:64]), where, self.clock.time(),
             int(ok), reason)))

    async def _audit_sign_in(self, actor: str | None, action: str, target: str | None,
                             details: dict[str, Any]) -> None:
        """The audit entry of a sign-in; on a full disk it waits in memory (its time kept)."""
        await self.db.backlog.write(f"the audit entry {action}", functools.partial(
            self.audit.record, actor, action, target, details, ts=self.clock.time()))

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await asyncio.to_thread(passwords.dummy_hash, self.config.scrypt_n)
        return self._dummy_hash

    def _owner_count(self) -> int:
        return sum(1 for u in self._users.values() if u.role == Role.OWNER)

    async def _write(self, statements: list[tuple[str, Any]]) -> None:
        """Write atomically and bump the generation so other processes reload."""
        self._generation = _new_generation()
        self._epoch += 1
        try:
            await self.db.write_script(
                [*statements, ("UPDATE auth_meta SET value=? WHERE key='generation'",
                               (self._generation,))])
        finally:
            self._epoch += 1

    async def _reload(self) -> None:
        epoch = self._epoch
        row = await self.db.fetchone("SELECT value FROM auth_meta WHERE key='generation'")
        self._generation = int(row["value"]) if row else 0
        users = {r["id"]: _user_from_row(r) for r in await self.db.fetchall("SELECT * FROM users")}
        now = self.clock.time()
        tokens = {
            r["hash"]: _token_from_row(r)
            for r in await self.db.fetchall(
                "SELECT * FROM tokens WHERE revoked_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?)", (now,))
        }
        if epoch != self._epoch:  # we wrote meanwhile: this snapshot may be stale; next poll
            return
        gone = [rec for h, rec in self._tokens.items() if h not in tokens]
        self._users, self._tokens = users, tokens
        self._principals.clear()
        self._drop_tokens(gone)

    def prune(self) -> int:
        """Forget expired tokens (memory), and rows long past their expiry (storage)."""
        now = self.clock.time()
        expired = [r for r in self._tokens.values()
                   if r.expires_at is not None and r.expires_at <= now]
        self._drop_tokens(expired)
        self.db.enqueue("DELETE FROM tokens WHERE expires_at < ?", (now - PRUNE_AFTER,))
        return len(expired)

    async def _poll(self) -> None:
        polls = 0
        while True:
            await self.clock.sleep(POLL_INTERVAL)
            polls += 1
            if polls % PRUNE_EVERY == 0:
                self.prune()
            try:
                row = await self.db.fetchone(
                    "SELECT value FROM auth_meta WHERE key='generation'")
                if row is not None and int(row["value"]) != self._generation:
                    await self._reload()
            except Exception:
                _LOG.exception("reloading accounts failed")

    def _flush_last_used(self) -> list[tuple[str, list[Any]]]:
        if not self._used:
            return []
        used, self._used = self._used, {}
        return [("UPDATE tokens SET last_used_at=? WHERE id=?",
                 [(ts, tid) for tid, ts in used.items()])]


def _principal(user: User, token_id: str | None) -> Principal:
    return Principal(user.id, user.username, user.role, token_id, user.is_minor,
                     user.granted_devices, user.granted_areas)


def principal_for(user: User, token_id: str | None = None) -> Principal:
    return _principal(user, token_id)


def _insert_token(rec: TokenRecord) -> tuple[str, tuple[Any, ...]]:
    return ("INSERT INTO tokens(id, user_id, kind, hash, name, family, created_at, expires_at) "
            "VALUES(?,?,?,?,?,?,?,?)",
            (rec.id, rec.user_id, rec.kind, rec.hash, rec.name, rec.family, rec.created_at,
             rec.expires_at))


def _user_from_row(r: Any) -> User:
    return User(r["id"], r["username"], Role(r["role"]), r["password"], bool(r["is_minor"]),
                frozenset(json.loads(r["granted_devices"])),
                frozenset(json.loads(r["granted_areas"])), r["totp_secret"],
                bool(r["totp_enabled"]), int(r["totp_last_step"]), r["created_at"],
                r["updated_at"])


def _token_from_row(r: Any) -> TokenRecord:
    return TokenRecord(r["id"], r["user_id"], r["kind"], r["hash"], r["name"], r["family"],
                       r["created_at"], r["expires_at"], r["last_used_at"])


def _check_username(username: str) -> None:
    if not USERNAME_RE.match(username):
        raise ValidationError("username", "1-64 letters, digits or _ . @ -")


def _check_password(password: str) -> None:
    if not passwords.MIN_LENGTH <= len(password) <= passwords.MAX_LENGTH:
        raise ValidationError(
            "password",
            f"must be {passwords.MIN_LENGTH}-{passwords.MAX_LENGTH} characters")


def _recovery_code() -> str:
    text = _b32(secrets.token_bytes(8))[:12].lower()
    return f"{text[:4]}-{text[4:8]}-{text[8:]}"


def _normal_code(code: str) -> str:
    return code.strip().replace("-", "").replace(" ", "").lower()


def _b32(raw: bytes) -> str:
    import base64

    return base64.b32encode(raw).decode().rstrip("=")


def _new_generation() -> int:
    return secrets.randbits(62)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
