"""Activity implementations: the I/O side of the worker (Postgres, action handlers, blobs)."""
