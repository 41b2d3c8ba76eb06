"""The domain of order-ingest: addressing, durable accept, extraction. No sockets, no trio."""
