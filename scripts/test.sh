#!/bin/sh
# Install everything the test suite needs, then run all of it.
# As root it installs the Debian packages the tests use and runs the suite inside a fresh
# network namespace, so no test can multicast or connect on this machine's real interfaces.
# Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."

PKGS="mosquitto libnl-3-200 libnl-route-3-200 avahi-daemon avahi-utils dbus libdbus-1-dev libglib2.0-dev pkg-config \
chromium iproute2 openssl curl jq sqlite3 g++ zbar-tools systemd"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for pkg in $PKGS; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "installing:$missing"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
    fi
fi

if [ -n "${UONE_VENV:-}" ]; then
    VENV=$UONE_VENV        # developers: reuse a venv that already has everything
else
    VENV=.venv
    PY=${PYTHON:-python3}
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]'
fi

# Real ESPHome firmware for tests/esphome: esphome from PyPI in its own venv, then g++ (cached
# in ~/.cache/uone-test, keyed on the YAML). Built here, before the suite's namespace cuts
# the network off; a failure here shows again as failing ESPHome tests.
if command -v g++ >/dev/null 2>&1; then
    "$VENV/bin/python" -m tests.esphome.firmware plug.yaml controller.yaml plug_v2.yaml \
        >/dev/null || echo "warning: building the ESPHome test firmware failed"
fi

# python-matter-server's venv and the matter.js devices for tests/matter (pinned, cached in
# ~/.cache/uone-test/matter), fetched here while the network is still there.
"$VENV/bin/python" -m tests.doubles.matter \
    || echo "warning: building the Matter test doubles failed"

if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
    ns="uone-test-$$"
    ip netns add "$ns"
    trap 'ip netns del "$ns" 2>/dev/null || true' EXIT INT TERM
    ip netns exec "$ns" ip link set lo up
    rc=0
    ip netns exec "$ns" env UONE_TEST_NETNS="$ns" "$VENV/bin/python" -m pytest "$@" || rc=$?
    exit $rc
else
    echo "not root: running without a private network namespace (namespace tests will skip)"
    exec "$VENV/bin/python" -m pytest "$@"
fi
