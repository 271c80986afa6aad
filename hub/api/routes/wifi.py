"""Wi-Fi networks in the vault: write-only passwords, listed without secrets."""

from __future__ import annotations

from aiohttp import web

from hub.api.access import requires
from hub.api.jsonio import field, json_response, read_json, reject_unknown
from hub.api.keys import HUB_KEY
from hub.auth.principal import Role
from hub.provisioning.wifi import WifiNetworks, check_ssid, network_json


def _networks(request: web.Request) -> WifiNetworks:
    return WifiNetworks(request.app[HUB_KEY].vault)


@requires(Role.ADMIN)
async def list_networks(request: web.Request) -> web.Response:
    networks = await _networks(request).list()
    return json_response({"networks": [network_json(n) for n in networks]})


@requires(Role.ADMIN)
async def put_network(request: web.Request) -> web.Response:
    ssid = check_ssid(request.match_info["ssid"])
    body = await read_json(request)
    reject_unknown(body, {"password", "security"})
    security = field(body, "security", str, required=False, default="wpa2-psk")
    password = field(body, "password", str, required=False)
    info, created = await _networks(request).put(ssid, password, security)
    return json_response(network_json(info), status=201 if created else 200)


@requires(Role.ADMIN)
async def delete_network(request: web.Request) -> web.Response:
    await _networks(request).delete(check_ssid(request.match_info["ssid"]))
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/wifi/networks", list_networks)
    r.add_put("/api/wifi/networks/{ssid:.+}", put_network)
    r.add_delete("/api/wifi/networks/{ssid:.+}", delete_network)
