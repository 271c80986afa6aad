"""GET /api/cloud/status and POST /api/cloud/pairing: owner-only, no secrets in answers."""

from __future__ import annotations

import base64
import json

from aiohttp.test_utils import TestClient, TestServer

from hub.api.access import required_role
from hub.api.app import make_app
from hub.api.routes import cloud as cloud_routes
from hub.auth.principal import Role
from hub.cloud.crypto import Pairing
from tests.cloud.conftest import PHONE_KEY, SYNC_KEY, USERS, cloud_section
from tests.cloud.test_sync import wait_until


def test_cloud_routes_are_owner_only():
    assert required_role(cloud_routes.get_status) == Role.OWNER
    assert required_role(cloud_routes.post_pairing) == Role.OWNER


async def test_status_when_off(api_client):
    resp = await api_client.get("/api/cloud/status")
    assert resp.status == 200
    body = await resp.json()
    assert body["configured"] is False and body["enabled"] is False
    assert body["connected"] is False and body["state"] == "off"
    assert body["outbox"]["depth"] == 0 and body["last_delivery"] is None
    resp = await api_client.post("/api/cloud/pairing", json={})
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "cloud_unavailable"


async def test_cloud_routes_refuse_non_owners(client_for):
    admin = await client_for(Role.ADMIN)
    assert (await admin.get("/api/cloud/status")).status == 403
    assert (await admin.post("/api/cloud/pairing", json={})).status == 403
    anonymous = await client_for(None)
    assert (await anonymous.get("/api/cloud/status")).status == 401


async def test_pairing_rejects_bad_input(api_client):
    resp = await api_client.post("/api/cloud/pairing", json={"client": 5})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "client"
    resp = await api_client.post("/api/cloud/pairing", json={"nope": 1})
    assert resp.status == 400 and (await resp.json())["error"]["field"] == "nope"
    resp = await api_client.post("/api/cloud/pairing", data="{", headers={
        "Content-Type": "application/json"})
    assert resp.status == 400


async def test_status_and_pairing_when_connected(broker, make_hub):
    hub = make_hub(cloud_section(broker))
    async with hub:
        owner = await hub.auth.create_user("owner", "correct horse battery", Role.OWNER)
        token, _ = await hub.auth.create_token(owner.id, "test")
        client = TestClient(TestServer(make_app(hub)),
                            headers={"Authorization": f"Bearer {token}"})
        await client.start_server()
        try:
            await wait_until(lambda: hub.cloud.connected and hub.cloud.outbox.depth == 0)
            resp = await client.get("/api/cloud/status")
            text = await resp.text()
            body = await resp.json()
            assert resp.status == 200
            assert body["connected"] is True and body["enabled"] is True
            assert body["outbox"]["depth"] == 0 == body["outbox_depth"] and body["delivered"] > 0
            assert body["last_delivery"] is not None and body["last_error"] is None
            for secret in (USERS["hub"], SYNC_KEY, PHONE_KEY, SYNC_KEY.rstrip("=")):
                assert secret not in text
            resp = await client.post("/api/cloud/pairing", json={"client": "phone"})
            assert resp.status == 200
            pairing = Pairing.decode((await resp.json())["pairing_code"])
            assert pairing.sync_key == base64.b64decode(SYNC_KEY)
            assert pairing.client_key == base64.b64decode(PHONE_KEY)
            assert pairing.hub_id == hub.cloud.outbox.hub_id
            assert pairing.broker_url == broker.url
            resp = await client.post("/api/cloud/pairing", json={"client": "stranger"})
            assert resp.status == 404
            rows = await hub.db.fetchall("SELECT * FROM audit WHERE action = ?",
                                         ("cloud.pairing_code",))
            assert len(rows) == 1 and rows[0]["target"] == "phone"
            assert pairing.encode()[6:30] not in json.dumps([dict(r) for r in rows])
        finally:
            await client.close()
