"""The OpenAPI document matches the router both ways; schemathesis finds no 500."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api.app import make_app
from hub.api.routes.openapi import build_document
from hub.auth.principal import Role
from hub.config import load_config
from hub.hub import Hub
from tests.api.test_access import routes
from tests.conftest import write_config


def router_operations(app) -> set[tuple[str, str]]:
    """Every route of the app, in OpenAPI's path syntax ({path:.+} -> {path})."""
    return {(m.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", p))
            for m, p, _ in routes(app) if m != "HEAD"}


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


async def test_document_and_router_match_both_ways(api_client, hub: Hub) -> None:
    resp = await api_client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == hub.version
    app = make_app(hub)
    in_router, in_doc = router_operations(app), document_operations(doc)
    assert in_router - in_doc == set(), "routes missing from the document"
    assert in_doc - in_router == set(), "documented operations without a route"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert not op.get("x-undocumented"), f"{where}: add @describe(...) to its handler"
            assert op["summary"] and op["responses"], where
            assert any(code.startswith(("2", "1")) for code in op["responses"]), where
            if op["x-min-role"] != "public":
                assert {"401", "403"} <= op["responses"].keys(), where
                assert "security" not in op, where  # the global bearer requirement applies
            else:
                assert op["security"] == [], where
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path, where
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                jsonschema.Draft202012Validator.check_schema(body["schema"])
            for answer in op["responses"].values():
                for content in answer.get("content", {}).values():
                    if "$ref" not in content["schema"]:
                        jsonschema.Draft202012Validator.check_schema(content["schema"])
    # the contract paths LAN clients rely on
    for method, path in [("post", "/api/auth/login"), ("post", "/api/auth/refresh"),
                         ("post", "/api/auth/logout"), ("post", "/api/onboarding"),
                         ("get", "/api/users"), ("post", "/api/users/{user_id}/totp"),
                         ("post", "/api/tokens"), ("get", "/api/devices"),
                         ("patch", "/api/devices/{device_id}"),
                         ("get", "/api/devices/{device_id}/history"), ("get", "/api/ws"),
                         ("get", "/api/openapi.json"), ("get", "/api/audit"),
                         ("get", "/api/health")]:
        assert (method, path) in in_doc, (method, path)


async def test_a_new_undescribed_route_is_flagged(hub: Hub) -> None:
    from aiohttp import web

    from hub.api.access import requires

    @requires(Role.MEMBER)
    async def newcomer(request: web.Request) -> web.Response:
        return web.Response()

    app = make_app(hub)
    app.router.add_get("/api/newcomer/{thing}", newcomer)
    doc = build_document(app)
    op = doc["paths"]["/api/newcomer/{thing}"]["get"]
    assert op["x-undocumented"] is True and op["x-min-role"] == "member"
    assert op["parameters"][0]["name"] == "thing"


@contextlib.contextmanager
def hub_in_thread(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """A real hub and API server on loopback in its own thread and loop, so a synchronous
    HTTP client (schemathesis uses requests) can hammer it. Yields (url, owner token, doc)."""
    from hub.api.server import ApiServer

    loaded = load_config(write_config(tmp_path))
    ready = threading.Event()
    out: dict[str, Any] = {}
    stop: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        stop.append(lambda: loop.call_soon_threadsafe(done.set))
        try:
            async with Hub(loaded) as hub:
                owner = await hub.auth.create_user("owner", "fuzzing password", Role.OWNER)
                out["token"], _ = await hub.auth.create_token(owner.id, "fuzz")
                async with ApiServer(hub) as server:
                    out["url"] = f"http://127.0.0.1:{server.port}"
                    out["doc"] = build_document(server.app)
                    ready.set()
                    await done.wait()
        except BaseException as exc:
            out["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30), "hub did not start"
    if "error" in out:
        raise out["error"]
    try:
        yield out["url"], out["token"], out["doc"]
    finally:
        stop[0]()
        thread.join(30)
        assert not thread.is_alive()


# Operations that end the fuzzer's own session; they are covered by tests/auth.
SKIP = {("POST", "/api/auth/logout")}


def fuzz_operation(op: Any, url: str, headers: dict[str, str], statuses: dict[int, int],
                   failures: list[str]) -> None:
    strategy = st.one_of(op.as_strategy(GenerationMode.POSITIVE),
                         op.as_strategy(GenerationMode.NEGATIVE))
    where = f"{op.method.upper()} {op.path}"

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=10)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response,
                                   checks=[not_a_server_error, status_code_conformance,
                                           response_schema_conformance])
        except Exception as exc:
            failures.append(f"{where}: {response.status_code} {response.text[:200]} "
                            f"{type(exc).__name__}: {exc}"[:600])
            raise

    try:
        fuzz()
    except Exception as exc:  # hypothesis re-raises the minimal failing case
        if not failures or where not in failures[-1]:
            failures.append(f"{where}: {exc!r}"[:600])


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    with hub_in_thread(tmp_path) as (url, token, doc):
        schema = schemathesis.openapi.from_dict(doc)
        headers = {"Authorization": f"Bearer {token}"}
        failures: list[str] = []
        statuses: dict[int, int] = {}
        tested = 0
        for result in schema.get_all_operations():
            op = result.ok()
            if (op.method.upper(), op.path) in SKIP:
                continue
            tested += 1
            fuzz_operation(op, url, headers, statuses, failures)
        print("statuses seen:", dict(sorted(statuses.items())))
        assert not failures, "\n".join(failures[:10])
        assert tested >= 25
        assert sum(statuses.values()) >= tested * 10
        assert statuses.get(200, 0) + statuses.get(201, 0) + statuses.get(204, 0) > 50
