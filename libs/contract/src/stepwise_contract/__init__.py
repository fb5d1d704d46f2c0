"""Stepwise contract: the one library every service shares.

The modules of this package are the wire contract: names, payload types, the NATS envelope, HTTP
bodies, the DSL and its validation, expressions, the Temporal converter and the SQL migrations.
Importing them loads no I/O library (no database, NATS, HTTP or tracing SDK).

`stepwise_contract.platform` is the service plumbing built on it (pools, launch, run logs, ops
server, tracing, settings, secrets); its modules need the extras their services install.
"""
