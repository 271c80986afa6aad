"""The MQTT side: building an aiomqtt client from config, and the reconnect policy.

The policy is the core's `BackoffPolicy` (hub/reconnect.py: capped exponential backoff with
one jitter rule) from the config's bounds, longer after the broker refused our credentials;
the loop resets it once a connection has stood for a while (STABLE_AFTER).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from hub.cloud.config import CloudConfig
from hub.reconnect import BackoffPolicy
from hub.thirdparty import Purpose, mqtt_client_class

if TYPE_CHECKING:
    import aiomqtt

# aiomqtt and paho are imported when the first connection is made, not at start-up: most hubs
# never sync, and those that do start faster and smaller without them until consent is given.

AUTH_REASONS = frozenset({4, 5, 134, 135, 138})  # bad user/password, not authorized, banned
AUTH_FLOOR = 30.0  # wait at least this long after a credentials refusal
STABLE_AFTER = 60.0  # a connection that stood this long resets the backoff


def backoff_policy(config: CloudConfig) -> BackoffPolicy:
    """The reconnect policy of both cloud connections (hub.reconnect's one jitter rule)."""
    return BackoffPolicy(initial=config.backoff_initial, maximum=config.backoff_max,
                         auth_failure_delay=min(config.backoff_max, AUTH_FLOOR))


def is_auth_error(exc: BaseException) -> bool:
    from aiomqtt.exceptions import MqttConnectError

    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(exc, MqttConnectError) and value in AUTH_REASONS


def tls_context(config: CloudConfig) -> ssl.SSLContext:
    """Verified TLS: the configured CA (or the system store), hostname checked. Blocking I/O:
    call it in a thread."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.client_cert and config.client_key:
        ctx.load_cert_chain(config.client_cert, config.client_key)
    return ctx


def make_client(
    config: CloudConfig,
    *,
    identifier: str,
    password: str | None,
    tls: ssl.SSLContext | None,
    clean: bool = False,
    purpose: Purpose | None = None,
) -> aiomqtt.Client:
    """A client with a persistent session (clean=False) or one that wipes it (clean=True)."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port, _ = config.endpoint()
    v5 = config.protocol == "5"
    props = None
    kwargs: dict[str, object] = {}
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else config.session_expiry
        kwargs["clean_start"] = clean
    else:
        kwargs["clean_session"] = clean
    client = mqtt_client_class()(
        host, port,
        username=config.username, password=password if config.username else None,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        keepalive=config.keepalive,
        timeout=15.0,
        max_inflight_messages=config.max_inflight,
        properties=props,
        tls_context=tls,
        **kwargs,
    )
    client.pending_calls_threshold = config.max_inflight + 50
    if purpose is not None:
        client.purpose = purpose
    return client
