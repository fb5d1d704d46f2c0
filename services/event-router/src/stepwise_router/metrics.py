"""Prometheus metrics of the router. Labels are closed sets (outcome, reason, kind): never a tenant,
an event name or an id, so the series count stays bounded whatever producers send."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("routed", "error", "duplicate", "suspended", "dlq", "retry")


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.received = Counter(
            "stepwise_router_events_received_total",
            "Messages delivered to this router (redeliveries included).",
            registry=registry,
        )
        self.outcomes = Counter(
            "stepwise_router_events_total",
            "Deliveries by outcome: routed, error (a trigger failed), duplicate, suspended, dlq,"
            " retry (nak'd for redelivery).",
            ["outcome"],
            registry=registry,
        )
        self.matched = Counter(
            "stepwise_router_events_matched_total",
            "Events that signalled at least one waiting run.",
            registry=registry,
        )
        self.signals = Counter(
            "stepwise_router_signals_total",
            "Signals delivered to waiting runs, by wait kind.",
            ["kind"],
            registry=registry,
        )
        self.runs_started = Counter(
            "stepwise_router_runs_started_total",
            "Runs started by event triggers.",
            registry=registry,
        )
        self.trigger_failures = Counter(
            "stepwise_router_trigger_failures_total",
            "Triggered runs that failed at launch (payload mapping or validation).",
            registry=registry,
        )
        self.dlq = Counter(
            "stepwise_router_dlq_total",
            "Messages sent to the dead-letter stream, by reason.",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "stepwise_router_routing_seconds",
            "Time from delivery to ack/nak of one message.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_size = Histogram(
            "stepwise_router_batch_size",
            "Messages sharing one statement of a routing step (record, waits, triggers, finish).",
            ["step"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=registry,
        )
        self.in_flight = Gauge(
            "stepwise_router_in_flight",
            "Messages being processed by this router now.",
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.outcomes.labels(outcome)
