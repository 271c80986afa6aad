"""The local HTTP API: depends on the core, never the reverse."""
