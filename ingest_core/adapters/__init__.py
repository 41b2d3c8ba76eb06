"""Adapters implementing ingest_core.ports. Only bootstrap.py imports them."""
