"""Checkpoints: the commit records, the store protocol, the memory and SQLite
stores, and opening a store by path. Knows records, never the engine."""
