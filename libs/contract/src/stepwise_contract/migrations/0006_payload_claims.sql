-- Claim-checked payloads (the data converter's codec): a Temporal payload over 256 KiB is stored
-- here and the history holds a reference naming tenant, run and sha256. Content-addressed per
-- run, so re-encoding the same bytes (a replay, a retried activity) adds no row; deleted with the
-- run by retention. `body` is the serialized Temporal payload (metadata and data).
CREATE TABLE IF NOT EXISTS workflow_payload_claims (
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    sha256 text NOT NULL,
    body bytea NOT NULL,
    size_bytes int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, run_id, sha256)
);
