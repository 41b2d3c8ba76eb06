"""Adapters implementing ingest_core.ports. Only the bootstrap package imports them."""
