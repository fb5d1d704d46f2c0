-- Stepwise data model (SPEC §2). Table and column names follow the reference system so that an
-- existing database of that system can be adopted: every statement is IF NOT EXISTS.

CREATE TABLE IF NOT EXISTS tenants (
    tenant uuid PRIMARY KEY,
    name text NOT NULL,
    step_quota_limit int NULL,
    run_rate_limit_per_min int NULL,
    run_retention_days int NULL,
    redaction_pointers jsonb NOT NULL DEFAULT '[]'::jsonb,
    redaction_key_patterns jsonb NOT NULL DEFAULT '[]'::jsonb,
    suspended bool NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id uuid PRIMARY KEY,
    tenant uuid NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,
    name text NOT NULL DEFAULT '',
    key_hash text NOT NULL UNIQUE,
    role text NOT NULL CHECK (role IN ('read', 'manage', 'publish', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz NULL
);
CREATE INDEX IF NOT EXISTS api_keys_tenant_idx ON api_keys (tenant);

CREATE TABLE IF NOT EXISTS tenant_secrets (
    tenant uuid NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,
    name text NOT NULL,
    value_encrypted bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- tenant NULL = built-in schema (payload.Empty.v1).
CREATE TABLE IF NOT EXISTS workflow_payload_schemas (
    schema_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant uuid NULL,
    schema_ref text NOT NULL,
    schema_json jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS workflow_payload_schemas_ref_uq
    ON workflow_payload_schemas (tenant, schema_ref) WHERE tenant IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_payload_schemas_builtin_uq
    ON workflow_payload_schemas (schema_ref) WHERE tenant IS NULL;
INSERT INTO workflow_payload_schemas (tenant, schema_ref, schema_json)
    VALUES (NULL, 'payload.Empty.v1', '{"type": "object"}'::jsonb)
    ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS workflow_definitions (
    workflow_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    key text NULL,
    name text NOT NULL,
    description text NULL,
    payload_schema_ref text NULL,
    trigger jsonb NULL,
    -- denormalised from trigger for the router's lookup by event type
    trigger_event_name text NULL,
    draft_definition jsonb NOT NULL,
    draft_version int NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    is_paused bool NOT NULL DEFAULT false,
    concurrency_limit int NULL,
    latest_published_version int NULL,
    validation_status text NULL,
    validation_errors jsonb NOT NULL DEFAULT '[]'::jsonb,
    validation_warnings jsonb NOT NULL DEFAULT '[]'::jsonb,
    validated_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS workflow_definitions_key_uq
    ON workflow_definitions (tenant, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_definitions_trigger_idx
    ON workflow_definitions (tenant, trigger_event_name) WHERE trigger_event_name IS NOT NULL;

CREATE TABLE IF NOT EXISTS workflow_definition_versions (
    version_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    workflow_id uuid NOT NULL REFERENCES workflow_definitions (workflow_id) ON DELETE CASCADE,
    version int NOT NULL,
    definition_json jsonb NOT NULL,
    payload_schema_json jsonb NULL,
    definition_hash text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, version)
);
CREATE INDEX IF NOT EXISTS workflow_definition_versions_tenant_idx
    ON workflow_definition_versions (tenant, workflow_id);

CREATE TABLE IF NOT EXISTS workflow_runs (
    run_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    workflow_id uuid NOT NULL,
    workflow_version int NOT NULL,
    status text NOT NULL CHECK (status IN ('RUNNING', 'WAITING', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    node_path text NULL,
    input_json jsonb NOT NULL DEFAULT '{}'::jsonb,
    result_json jsonb NULL,
    error_json jsonb NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    engine text NULL DEFAULT 'temporal',
    temporal_workflow_id text NULL,
    temporal_run_id text NULL,
    -- launch reconciliation: how often the sweeper tried to start this run
    launch_attempts int NOT NULL DEFAULT 0,
    definition_hash text NULL,
    trigger_type text NULL CHECK (trigger_type IS NULL OR trigger_type IN ('event', 'schedule', 'recurring')),
    trigger_metadata_json jsonb NULL,
    trigger_fire_key text NULL,
    event_type text NULL,
    parent_run_id uuid NULL,
    root_run_id uuid NULL,
    idempotency_key text NULL,
    idempotency_hash text NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_fire_key_uq
    ON workflow_runs (tenant, trigger_fire_key) WHERE trigger_fire_key IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runs_idempotency_uq
    ON workflow_runs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_runs_tenant_started_idx
    ON workflow_runs (tenant, started_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS workflow_runs_tenant_status_idx ON workflow_runs (tenant, status);
CREATE INDEX IF NOT EXISTS workflow_runs_workflow_idx ON workflow_runs (tenant, workflow_id, status);
CREATE INDEX IF NOT EXISTS workflow_runs_parent_idx ON workflow_runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
-- launch reconciliation scan: running runs that never got a Temporal start
CREATE INDEX IF NOT EXISTS workflow_runs_unstarted_idx ON workflow_runs (started_at)
    WHERE status = 'RUNNING' AND temporal_run_id IS NULL;

CREATE TABLE IF NOT EXISTS workflow_run_steps (
    step_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NOT NULL,
    definition_step_id text NULL,
    step_type text NULL,
    status text NOT NULL CHECK (status IN ('STARTED', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    attempt int NOT NULL DEFAULT 1,
    duration_ms int NULL,
    error_json jsonb NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL
);
CREATE INDEX IF NOT EXISTS workflow_run_steps_run_idx ON workflow_run_steps (tenant, run_id, started_at);

CREATE TABLE IF NOT EXISTS workflow_run_waits (
    wait_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NOT NULL,
    wait_type text NOT NULL CHECK (wait_type IN ('event', 'time', 'human', 'quota')),
    key text NULL,
    event_name text NULL,
    timeout_at timestamptz NULL,
    status text NOT NULL CHECK (status IN ('WAITING', 'RESOLVED', 'CANCELED')),
    payload jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz NULL
);
CREATE INDEX IF NOT EXISTS workflow_run_waits_route_idx
    ON workflow_run_waits (tenant, event_name, key, status);
CREATE INDEX IF NOT EXISTS workflow_run_waits_run_idx ON workflow_run_waits (tenant, run_id);
CREATE INDEX IF NOT EXISTS workflow_run_waits_quota_idx ON workflow_run_waits (created_at)
    WHERE wait_type = 'quota' AND status = 'WAITING';

CREATE TABLE IF NOT EXISTS workflow_action_invocations (
    invocation_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NOT NULL,
    action_id text NOT NULL,
    action_version int NOT NULL,
    idempotency_key text NOT NULL,
    attempt int NOT NULL DEFAULT 1,
    status text NOT NULL CHECK (status IN ('STARTED', 'SUCCEEDED', 'FAILED')),
    input_json jsonb NULL,
    output_json jsonb NULL,
    error_json jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL,
    UNIQUE (tenant, action_id, action_version, idempotency_key, attempt)
);
CREATE INDEX IF NOT EXISTS workflow_action_invocations_run_idx
    ON workflow_action_invocations (tenant, run_id);

-- Read-only history of adopted runs; nothing in Stepwise writes it.
CREATE TABLE IF NOT EXISTS workflow_run_snapshots (
    snapshot_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NULL,
    envelope_json jsonb NULL,
    size_bytes int NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_run_snapshots_run_idx ON workflow_run_snapshots (tenant, run_id);

CREATE TABLE IF NOT EXISTS workflow_runtime_events (
    tenant uuid NOT NULL,
    event_id text NOT NULL,
    event_name text NOT NULL,
    event_type text NULL,
    correlation_key text NULL,
    correlation_keys text[] NOT NULL DEFAULT '{}',
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload_schema_ref text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NULL,
    matched_run_id uuid NULL,
    matched_wait_id uuid NULL,
    signaled_run_ids uuid[] NOT NULL DEFAULT '{}',
    started_run_ids uuid[] NOT NULL DEFAULT '{}',
    error_message text NULL,
    PRIMARY KEY (tenant, event_id)
);
CREATE INDEX IF NOT EXISTS workflow_runtime_events_created_idx
    ON workflow_runtime_events (tenant, created_at DESC);

-- Recent-event buffer (SPEC §5.4): one row per (event, derived correlation key) so that a wait
-- registered just after the event arrived can still find it.
CREATE TABLE IF NOT EXISTS workflow_recent_events (
    tenant uuid NOT NULL,
    event_id text NOT NULL,
    event_name text NOT NULL,
    correlation_key text NOT NULL DEFAULT '',
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, event_name, correlation_key, event_id)
);
CREATE INDEX IF NOT EXISTS workflow_recent_events_received_idx ON workflow_recent_events (received_at);

CREATE TABLE IF NOT EXISTS workflow_run_logs (
    log_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NULL,
    level text NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARN', 'ERROR')),
    message text NOT NULL,
    context_json jsonb NULL,
    source text NOT NULL CHECK (source IN ('runtime', 'api', 'worker', 'router', 'sweeper')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS workflow_run_logs_run_idx ON workflow_run_logs (tenant, run_id, created_at);

CREATE TABLE IF NOT EXISTS workflow_tasks (
    task_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NOT NULL,
    step_path text NOT NULL,
    task_type text NOT NULL,
    title text NOT NULL,
    description text NULL,
    context_data jsonb NULL,
    form_schema jsonb NULL,
    status text NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'CANCELED')),
    response_json jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL
);
CREATE INDEX IF NOT EXISTS workflow_tasks_tenant_status_idx ON workflow_tasks (tenant, status, created_at);

CREATE TABLE IF NOT EXISTS workflow_data_store (
    store_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    namespace text NOT NULL,
    key text NOT NULL,
    value jsonb NULL,
    value_type text NOT NULL DEFAULT 'json',
    revision bigint NOT NULL DEFAULT 1,
    expires_at timestamptz NULL,
    created_by_run_id uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, namespace, key)
);
CREATE INDEX IF NOT EXISTS workflow_data_store_expires_idx
    ON workflow_data_store (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS workflow_step_usage_periods (
    tenant uuid NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    effective_limit int NULL,
    used_count int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, period_start)
);

-- Launch rate limit shared by every API replica (per tenant, per minute window).
CREATE TABLE IF NOT EXISTS workflow_launch_rate (
    tenant uuid NOT NULL,
    window_start timestamptz NOT NULL,
    launches int NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, window_start)
);

-- Large payloads (> 256 KiB) passed by reference between workflow and activities.
CREATE TABLE IF NOT EXISTS workflow_payload_blobs (
    blob_id uuid PRIMARY KEY,
    tenant uuid NOT NULL,
    run_id uuid NULL,
    body jsonb NOT NULL,
    size_bytes int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
