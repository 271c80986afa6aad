"""The privacy center's tables (forward-only migrations)."""

from __future__ import annotations

from hub.storage import Schema

SCHEMA = Schema(
    "privacy",
    (
        """
        CREATE TABLE consents(
            purpose TEXT PRIMARY KEY, granted INTEGER NOT NULL, notice_version INTEGER NOT NULL,
            by_user TEXT, ts REAL NOT NULL, paused INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE consent_log(
            id INTEGER PRIMARY KEY, purpose TEXT NOT NULL, action TEXT NOT NULL,
            notice_version INTEGER NOT NULL, by_user TEXT, ts REAL NOT NULL
        );
        CREATE TABLE privacy_location(
            id INTEGER PRIMARY KEY CHECK (id = 1), latitude REAL NOT NULL,
            longitude REAL NOT NULL, elevation REAL NOT NULL DEFAULT 0, ts REAL NOT NULL
        );
        CREATE TABLE privacy_subjects(
            user_id TEXT PRIMARY KEY, restricted INTEGER NOT NULL DEFAULT 0,
            presence_objection INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL
        );
        CREATE TABLE privacy_token_addresses(
            token_id TEXT NOT NULL, address TEXT NOT NULL, first_seen REAL NOT NULL,
            PRIMARY KEY(token_id, address)
        ) WITHOUT ROWID;
        CREATE TABLE privacy_audit_anchor(
            id INTEGER PRIMARY KEY CHECK (id = 1), last_id INTEGER NOT NULL,
            last_hash TEXT NOT NULL, ts REAL NOT NULL
        );
        """,
        # v2: retention ages the owner set in the dashboard or the API (over the config's)
        """
        CREATE TABLE privacy_retention(
            class TEXT PRIMARY KEY, days REAL NOT NULL, by_user TEXT, ts REAL NOT NULL
        );
        """,
    ),
)
