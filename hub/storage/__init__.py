"""SQLite storage: one database, versioned migrations, one batching writer."""

from hub.storage.bulk import BulkInsert
from hub.storage.database import Database, DatabaseDamaged, StorageStats
from hub.storage.migrations import Schema
from hub.storage.text import storable

__all__ = ["BulkInsert", "Database", "DatabaseDamaged", "Schema", "StorageStats", "storable"]
