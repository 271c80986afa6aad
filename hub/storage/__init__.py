"""SQLite storage: one database, versioned migrations, one batching writer."""

from hub.storage.database import Database, StorageStats
from hub.storage.migrations import Schema

__all__ = ["Database", "Schema", "StorageStats"]
