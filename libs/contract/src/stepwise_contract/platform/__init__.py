"""Service plumbing shared by the services, beside the pure wire contract.

Each module needs some of the package's extras (`libs/contract/pyproject.toml`):
- ops: `ops` (ops HTTP server, SIGTERM main loop), `readiness`, `logs`
- postgres: `db`, `launch`, `run_logs`, `claim_store`, `migrate`, `adoption`
- otel: `tracing`; with http (aiohttp, in ops) `http_tracing`; with nats `nats_tracing`
- crypto: `secrets`
- none beyond the contract's own: `settings`, `otel_settings`, `temporal`

`readiness` only annotates the clients its checks receive, so a service without NATS (the
sweeper) never imports nats-py through it.
"""
