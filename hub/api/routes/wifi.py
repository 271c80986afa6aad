"""Wi-Fi networks in the vault: write-only passwords, listed without secrets."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.api.spec import STR, array, describe, nullable, obj
from hub.auth.principal import Role
from hub.provisioning.wifi import WifiNetworks, check_ssid, network_json

NETWORK = obj(("ssid", "security", "created_at", "updated_at", "last_used"),
              ssid=STR, security=STR, created_at={"type": "number"},
              updated_at={"type": "number"}, last_used=nullable({"type": "number"}))
NETWORK_PUT = {**NETWORK, "properties": {**NETWORK["properties"], "created": {"type": "boolean"}}}
SECURITY = {"enum": ["wpa2-psk", "wpa3-sae", "wpa2-wpa3", "open", "wpa2", "wpa3"]}


def _networks(request: web.Request) -> WifiNetworks:
    return WifiNetworks(request.app[HUB_KEY].vault)


@requires(Role.ADMIN)
@describe("Wi-Fi networks in the vault: SSIDs and when each was last used, no secrets",
          tags=("wifi",), response=obj(("networks",), networks=array(NETWORK)))
async def list_networks(request: web.Request) -> web.Response:
    networks = await _networks(request).list()
    return json_response({"networks": [network_json(n) for n in networks]})


@requires(Role.ADMIN)
@describe("Add or replace a Wi-Fi network; the password is write-only (never shown again)",
          tags=("wifi",), response=NETWORK_PUT,
          body=obj(password={"type": "string", "minLength": 8, "maxLength": 63},
                   security=SECURITY),
          description="SSID: 1-32 bytes of UTF-8. Password: 8-63 printable ASCII characters "
                      "(none for open networks). `created` says whether it was new.")
async def put_network(request: web.Request) -> web.Response:
    ssid = check_ssid(request.match_info["ssid"])
    body = await read_json(request)
    reject_unknown(body, {"password", "security"})
    security = field(body, "security", str, required=False, default="wpa2-psk")
    password = field(body, "password", str, required=False)
    info, created = await _networks(request).put(ssid, password, security)
    return json_response({**network_json(info), "created": created})


@requires(Role.ADMIN)
@describe("Delete a Wi-Fi network for good (secure_delete, WAL truncated)", tags=("wifi",),
          status=204, errors=(404,))
async def delete_network(request: web.Request) -> web.Response:
    await _networks(request).delete(check_ssid(request.match_info["ssid"]))
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/wifi/networks", list_networks)
    r.add_put("/api/wifi/networks/{ssid:[\\s\\S]+}", put_network)
    r.add_delete("/api/wifi/networks/{ssid:[\\s\\S]+}", delete_network)
