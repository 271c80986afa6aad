"""Accounts through the real app: passwords, lockout, TOTP, tokens, refresh, history, audit."""

from __future__ import annotations

import sqlite3

import aiohttp
from aiohttp.test_utils import TestServer

from hub.auth import passwords, totp
from hub.auth.principal import Role
from hub.hub import Hub
from tests.auth.conftest import ManualClock, secret_of
from tests.conftest import OWNER_USERNAME, TEST_PASSWORD


async def login(client, username=OWNER_USERNAME, password=TEST_PASSWORD, **extra):
    return await client.post("/api/auth/login",
                             json={"username": username, "password": password, **extra})


async def test_passwords_are_scrypt_with_per_user_salt(hub: Hub) -> None:
    a = await hub.auth.create_user("alice", "same password!", Role.MEMBER)
    b = await hub.auth.create_user("bob", "same password!", Role.MEMBER)
    rows = {r["username"]: r["password"] for r in
            await hub.db.fetchall("SELECT username, password FROM users")}
    assert rows["alice"].startswith("scrypt$16384$8$1$")
    assert rows["alice"] != rows["bob"]  # different salts
    assert "same password" not in rows["alice"]
    assert passwords.verify_password("same password!", rows["alice"])
    assert not passwords.verify_password("same password?", rows["alice"])
    assert a.to_json().keys().isdisjoint({"password", "totp_secret"})
    assert "scrypt" not in str(b.to_json())


async def test_login_returns_working_tokens_stored_only_as_hashes(client_for, hub) -> None:
    anon = await client_for(None)
    await client_for(Role.MEMBER, username="mia")
    resp = await login(anon, "mia")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["token_type"] == "Bearer" and body["user"]["role"] == "member"
    access, refresh = body["access_token"], body["refresh_token"]
    assert len(access) >= 43 and access != refresh
    me = await anon.get("/api/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status == 200 and (await me.json())["username"] == "mia"
    stored = [r["hash"] for r in await hub.db.fetchall("SELECT hash FROM tokens")]
    assert access not in stored and refresh not in stored
    from hub.auth.service import token_hash
    assert token_hash(access) in stored
    # a refresh token is not an access token
    r = await anon.get("/api/users/me", headers={"Authorization": f"Bearer {refresh}"})
    assert r.status == 401


async def test_wrong_password_and_unknown_user_look_alike(client_for) -> None:
    anon = await client_for(None)
    await client_for(Role.MEMBER, username="mia")
    r1 = await login(anon, "mia", "wrong password")
    r2 = await login(anon, "nobody", "wrong password")
    assert r1.status == r2.status == 401
    assert (await r1.json())["error"]["message"] == (await r2.json())["error"]["message"]


async def test_lockout_grows_and_spares_other_addresses(
        client_for, api_server: TestServer, clock: ManualClock, hub: Hub) -> None:
    await client_for(Role.OWNER, username="olga")
    attacker = await client_for(None)
    for attempt in range(5):
        assert (await login(attacker, "olga", f"guess-{attempt}")).status == 401
    retry_afters = []
    for _ in range(3):
        resp = await login(attacker, "olga", TEST_PASSWORD)  # even the right password waits
        assert resp.status == 429
        retry_afters.append(int(resp.headers["Retry-After"]))
        clock.advance(retry_afters[-1])  # wait it out, then fail once more
        assert (await login(attacker, "olga", "guess again")).status == 401
    assert retry_afters[0] == hub.config.auth.lockout_base
    assert retry_afters[1:] == [2 * retry_afters[0], 4 * retry_afters[0]]
    # the owner's phone (another address) signs in at once
    phone = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
    try:
        async with phone.post(api_server.make_url("/api/auth/login"),
                              json={"username": "olga", "password": TEST_PASSWORD}) as r:
            assert r.status == 200, await r.text()
    finally:
        await phone.close()
    # success resets the pair
    clock.advance(10_000)
    assert (await login(attacker, "olga", TEST_PASSWORD)).status == 200
    assert (await login(attacker, "olga", "wrong again")).status == 401
    history = await hub.auth.logins(hub.auth.find_user("olga").id, 100)
    assert sum(1 for h in history if not h["ok"]) >= 6
    assert {h["address"] for h in history} == {"127.0.0.1", "127.0.0.2"}


async def test_address_ceiling_stops_username_spraying(client_for, api_server,
                                                       hub: Hub) -> None:
    attacker = await client_for(None)
    limit = hub.config.auth.address_max_failures
    for i in range(limit):
        r = await login(attacker, f"user{i}", "guess guess")
        assert r.status == 401
    r = await login(attacker, OWNER_USERNAME, "guess guess")
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    await client_for(Role.OWNER, username=OWNER_USERNAME)
    phone = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.3", 0)))
    try:
        async with phone.post(api_server.make_url("/api/auth/login"),
                              json={"username": OWNER_USERNAME,
                                    "password": TEST_PASSWORD}) as r:
            assert r.status == 200
    finally:
        await phone.close()


async def test_totp_enrol_confirm_login_recovery_disable(
        api_client, client_for, clock: ManualClock, hub: Hub) -> None:
    me = api_client.user.id
    r = await api_client.post(f"/api/users/{me}/totp")
    assert r.status == 200
    uri = (await r.json())["otpauth_uri"]
    assert uri.startswith("otpauth://totp/") and "issuer=Uone+Hub" in uri
    secret = secret_of(uri)
    # not enforced before confirmation
    anon = await client_for(None)
    assert (await login(anon)).status == 200
    r = await api_client.put(f"/api/users/{me}/totp", json={"code": "000000"})
    assert r.status == 400 and (await r.json())["error"]["field"] == "code"
    r = await api_client.put("/api/users/me/totp",
                             json={"code": totp.code_at(secret, clock.time())})
    assert r.status == 200, await r.text()
    codes = (await r.json())["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = [r["code_hash"] for r in await hub.db.fetchall("SELECT code_hash FROM "
                                                            "recovery_codes")]
    assert len(stored) == 10 and not set(codes) & set(stored)
    # now the password alone is not enough
    r = await login(anon)
    assert r.status == 401 and (await r.json())["error"]["code"] == "totp_required"
    # the code used to confirm cannot be replayed in the same step
    r = await login(anon, totp=totp.code_at(secret, clock.time()))
    assert r.status == 401
    clock.advance(30)
    code = totp.code_at(secret, clock.time())
    assert (await login(anon, totp=code)).status == 200
    assert (await login(anon, totp=code)).status == 401  # replay
    # a recovery code works once
    assert (await login(anon, totp=codes[0])).status == 200
    assert (await login(anon, totp=codes[0])).status == 401
    # another user cannot enrol or disable mine
    member = await client_for(Role.MEMBER)
    assert (await member.post(f"/api/users/{me}/totp")).status == 403
    r = await member.delete(f"/api/users/{me}/totp", json={"password": TEST_PASSWORD})
    assert r.status == 403
    # disabling asks for the password again
    r = await api_client.delete("/api/users/me/totp", json={"password": "nope nope"})
    assert r.status == 401
    r = await api_client.delete("/api/users/me/totp", json={"password": TEST_PASSWORD})
    assert r.status == 204
    clock.advance(10_000)  # the failed attempts above are forgotten
    assert (await login(anon)).status == 200
    actions = [e.action for e in await hub.audit.entries(limit=100)]
    assert {"totp.enrol", "totp.enable", "totp.disable", "totp.recovery_code_used"} <= set(
        actions)


async def test_refresh_rotates_and_reuse_ends_the_session(client_for, hub) -> None:
    anon = await client_for(None)
    await client_for(Role.MEMBER, username="mia")
    first = await (await login(anon, "mia")).json()
    r = await anon.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status == 200
    second = await r.json()
    assert second["access_token"] != first["access_token"]
    auth = {"Authorization": f"Bearer {second['access_token']}"}
    old = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await anon.get("/api/users/me", headers=auth)).status == 200
    assert (await anon.get("/api/users/me", headers=old)).status == 401
    # the old refresh token comes back: someone copied it; the whole family ends
    r = await anon.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status == 401
    assert (await anon.get("/api/users/me", headers=auth)).status == 401
    r = await anon.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status == 401
    assert "token.reuse_detected" in [e.action for e in await hub.audit.entries()]


async def test_access_token_expires(client_for, clock: ManualClock, hub) -> None:
    anon = await client_for(None)
    await client_for(Role.MEMBER, username="mia")
    body = await (await login(anon, "mia")).json()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await anon.get("/api/users/me", headers=auth)).status == 200
    clock.advance(hub.config.auth.access_token_ttl + 1)
    r = await anon.get("/api/users/me", headers=auth)
    assert r.status == 401 and "expired" in (await r.json())["error"]["message"]
    r = await anon.post("/api/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status == 200


async def test_logout_revokes_the_session(client_for) -> None:
    anon = await client_for(None)
    await client_for(Role.GUEST, username="gus")
    body = await (await login(anon, "gus")).json()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await anon.post("/api/auth/logout", headers=auth)).status == 204
    assert (await anon.get("/api/users/me", headers=auth)).status == 401
    r = await anon.post("/api/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status == 401


async def test_long_lived_tokens_list_and_revoke(api_client, client_for, hub) -> None:
    member = await client_for(Role.MEMBER)
    r = await member.post("/api/tokens", json={"name": "backup script"})
    assert r.status == 201
    made = await r.json()
    raw = made["token"]
    assert made["expires_at"] is None and made["kind"] == "long"
    script = await client_for(None)
    auth = {"Authorization": f"Bearer {raw}"}
    assert (await script.get("/api/devices", headers=auth)).status == 200
    listed = (await (await member.get("/api/tokens")).json())["tokens"]
    assert made["id"] in {t["id"] for t in listed}
    assert all("token" not in t and "hash" not in t for t in listed)
    # others cannot see or revoke it; the owner can see everyone's
    other = await client_for(Role.ADMIN)
    assert made["id"] not in {t["id"] for t in (await (await other.get("/api/tokens")).json())[
        "tokens"]}
    assert (await other.delete(f"/api/tokens/{made['id']}")).status == 404
    everyone = (await (await api_client.get("/api/tokens?all=true")).json())["tokens"]
    assert made["id"] in {t["id"] for t in everyone}
    assert (await member.delete(f"/api/tokens/{made['id']}")).status == 204
    assert (await script.get("/api/devices", headers=auth)).status == 401  # next request
    bad = await member.post("/api/tokens", json={"name": "x", "expires_in": 5})
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "expires_in"
    actions = [e.action for e in await hub.audit.entries()]
    assert "token.create" in actions and "token.revoke" in actions


async def test_sign_in_history_is_per_user(client_for) -> None:
    anon = await client_for(None)
    mia = await client_for(Role.MEMBER, username="mia")
    await client_for(Role.MEMBER, username="max")
    await login(anon, "mia", "wrong password")
    await login(anon, "mia")
    await login(anon, "max")
    r = await mia.get("/api/users/me/logins")
    logins = (await r.json())["logins"]
    assert [x["ok"] for x in logins] == [True, False]
    assert all(x["address"] == "127.0.0.1" and x["ts"] > 0 for x in logins)
    r = await mia.get("/api/users/me/logins?limit=abc")
    assert r.status == 400 and (await r.json())["error"]["field"] == "limit"


async def test_owner_reads_an_accounts_sign_in_history_and_it_is_audited(
        api_client, client_for, hub) -> None:
    anon = await client_for(None)
    mia = await client_for(Role.MEMBER, username="mia")
    admin = await client_for(Role.ADMIN, username="ada")
    await login(anon, "mia", "wrong password")
    await login(anon, "mia")
    mia_id = (await (await mia.get("/api/users/me")).json())["id"]
    r = await api_client.get(f"/api/users/{mia_id}/logins?limit=1")
    assert r.status == 200, await r.text()
    assert [x["ok"] for x in (await r.json())["logins"]] == [True]  # newest first, limited
    r = await api_client.get(f"/api/users/{mia_id}/logins")
    assert [x["ok"] for x in (await r.json())["logins"]] == [True, False]
    for other in (mia, admin):  # only the owner looks at someone else's
        assert (await other.get(f"/api/users/{mia_id}/logins")).status == 403
    assert (await api_client.get("/api/users/nobody/logins")).status == 404
    bad = await api_client.get(f"/api/users/{mia_id}/logins?limit=0")
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "limit"
    reads = [e for e in await hub.audit.entries() if e.action == "user.logins.read"]
    assert len(reads) == 2 and all(e.target == mia_id for e in reads)  # the 2 answered


async def test_users_crud_roles_and_last_owner(api_client, client_for, hub) -> None:
    r = await api_client.post("/api/users", json={
        "username": "kid", "password": "long enough", "role": "guest", "is_minor": True,
        "granted_devices": ["virtual.lamp"]})
    assert r.status == 201, await r.text()
    kid = await r.json()
    assert kid["is_minor"] is True and kid["granted_devices"] == ["virtual.lamp"]
    r = await api_client.post("/api/users", json={
        "username": "kid", "password": "long enough", "role": "guest"})
    assert r.status == 409
    for body, fld in [({"username": "x", "password": "short", "role": "guest"}, "password"),
                      ({"username": "x", "password": "long enough", "role": "king"}, "role"),
                      ({"username": "a b", "password": "long enough", "role": "guest"},
                       "username"),
                      ({"username": "x", "password": "long enough", "role": "guest",
                        "admin": True}, "admin")]:
        r = await api_client.post("/api/users", json=body)
        assert r.status == 400 and (await r.json())["error"]["field"] == fld, body
    r = await api_client.patch(f"/api/users/{kid['id']}", json={"role": "member",
                                                                "is_minor": False})
    assert r.status == 200 and (await r.json())["role"] == "member"
    member = await client_for(Role.MEMBER)
    assert (await member.get("/api/users")).status == 403
    assert (await member.delete(f"/api/users/{kid['id']}")).status == 403
    owner_id = api_client.user.id
    r = await api_client.delete(f"/api/users/{owner_id}")
    assert r.status == 409
    r = await api_client.patch(f"/api/users/{owner_id}", json={"role": "admin"})
    assert r.status == 409
    assert (await api_client.delete(f"/api/users/{kid['id']}")).status == 204
    assert (await api_client.get(f"/api/users/{kid['id']}")).status == 404
    actions = [e.action for e in await hub.audit.entries()]
    assert {"user.create", "user.update", "user.delete"} <= set(actions)


async def test_deleting_a_user_ends_their_tokens(api_client, client_for) -> None:
    member = await client_for(Role.MEMBER)
    assert (await member.get("/api/users/me")).status == 200
    assert (await api_client.delete(f"/api/users/{member.user.id}")).status == 204
    assert (await member.get("/api/users/me")).status == 401


async def test_change_my_password_ends_other_sessions(client_for) -> None:
    anon = await client_for(None)
    mia = await client_for(Role.MEMBER, username="mia")
    other = await (await login(anon, "mia")).json()
    body = await login(anon, "mia")
    mine = {"Authorization": f"Bearer {(await body.json())['access_token']}"}
    r = await anon.post("/api/users/me/password", headers=mine,
                        json={"current_password": "wrong one!", "new_password": "new pass 1"})
    assert r.status == 401
    r = await anon.post("/api/users/me/password", headers=mine,
                        json={"current_password": TEST_PASSWORD, "new_password": "new pass 1"})
    assert r.status == 204
    assert (await anon.get("/api/users/me", headers=mine)).status == 200
    r = await anon.get("/api/users/me",
                       headers={"Authorization": f"Bearer {other['access_token']}"})
    assert r.status == 401
    assert (await login(anon, "mia", "new pass 1")).status == 200
    assert (await mia.get("/api/users/me")).status == 200  # long-lived script token stays


async def test_audit_log_is_owner_only_chained_and_detects_tampering(
        api_client, client_for, hub: Hub) -> None:
    anon = await client_for(None)
    await login(anon, OWNER_USERNAME, "bad password")
    await login(anon)
    member = await client_for(Role.MEMBER)
    assert (await member.get("/api/audit")).status == 403
    r = await api_client.get("/api/audit?limit=50")
    entries = (await r.json())["entries"]
    actions = [e["action"] for e in entries]
    assert "login.failed" in actions and "login.ok" in actions
    assert all("password" not in str(e["details"]) or "bad" not in str(e["details"])
               for e in entries)
    assert (await (await api_client.get("/api/audit/verify")).json())["intact"] is True
    await hub.db.flush()
    # tampering: rows cannot be updated, and a deleted row breaks the chain
    conn = sqlite3.connect(hub.db.path)
    try:
        try:
            conn.execute("UPDATE audit SET actor='mallory' WHERE id=2")
            raise AssertionError("update should be refused")
        except sqlite3.DatabaseError as exc:
            assert "append-only" in str(exc)
        conn.execute("DELETE FROM audit WHERE id=2")
        conn.commit()
    finally:
        conn.close()
    body = await (await api_client.get("/api/audit/verify")).json()
    assert body == {"intact": False, "broken_at": 3}


async def test_onboarding_creates_the_owner_once(client_for, hub: Hub) -> None:
    path = hub.auth.onboarding_path
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    code = path.read_text().strip()
    anon = await client_for(None)
    assert (await (await anon.get("/api/onboarding")).json()) == {"needed": True}
    r = await anon.post("/api/onboarding", json={"code": "WRONG-CODE", "username": "me",
                                                 "password": "first owner!"})
    assert r.status == 401
    r = await anon.post("/api/onboarding", json={"code": code.lower(), "username": "me",
                                                 "password": "first owner!"})
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["user"]["role"] == "owner"
    assert not path.exists()
    me = await anon.get("/api/users/me",
                        headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await me.json())["username"] == "me"
    r = await anon.post("/api/onboarding", json={"code": code, "username": "again",
                                                 "password": "first owner!"})
    assert r.status == 409
    assert (await (await anon.get("/api/onboarding")).json()) == {"needed": False}


async def test_expired_tokens_are_pruned(client_for, clock: ManualClock, hub: Hub) -> None:
    anon = await client_for(None)
    await client_for(Role.MEMBER, username="mia")
    await login(anon, "mia")
    live = len(hub.auth.tokens())
    clock.advance(hub.config.auth.access_token_ttl + 1)
    assert hub.auth.prune() == 1  # the access token; refresh and script tokens live on
    assert len(hub.auth.tokens()) == live - 1
    clock.advance(hub.config.auth.refresh_token_ttl + 8 * 86400)
    assert hub.auth.prune() == 1
    await hub.db.flush()
    kinds = [r["kind"] for r in await hub.db.fetchall("SELECT kind FROM tokens")]
    assert kinds == ["long"]


async def test_secrets_never_reach_the_logs(client_for, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    anon = await client_for(None)
    member = await client_for(Role.MEMBER, username="mia")
    body = await (await login(anon, "mia")).json()
    await login(anon, "mia", "a wrong secret pw")
    made = await (await member.post("/api/tokens", json={"name": "x"})).json()
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in (TEST_PASSWORD, "a wrong secret pw", body["access_token"],
                   body["refresh_token"], made["token"], member.token):
        assert secret not in text


async def test_onboarding_code_guessing_is_throttled(client_for, hub: Hub) -> None:
    code = hub.auth.onboarding_path.read_text().strip()
    anon = await client_for(None)
    for i in range(5):
        r = await anon.post("/api/onboarding", json={"code": f"GUESS-{i}", "username": "me",
                                                     "password": "first owner!"})
        assert r.status == 401
    r = await anon.post("/api/onboarding", json={"code": code, "username": "me",
                                                 "password": "first owner!"})
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0


def test_throttle_memory_is_bounded() -> None:
    from hub.auth import throttle

    clock = ManualClock()
    t = throttle.LoginThrottle(clock)
    for i in range(throttle.MAX_ENTRIES + 500):
        t.failed(f"user{i}", f"10.0.{i // 250 % 250}.{i % 250}")
    assert len(t._pairs) == throttle.MAX_ENTRIES and len(t._addresses) <= throttle.MAX_ENTRIES
