-- The reference runtime's final schema on plain (non-Citus) Postgres, as its own migrations leave
-- it: nullable `tenant` columns, single-column primary keys, its own unique keys and foreign keys,
-- plus the host application's `tenants`, `api_keys` and `workflow_tasks` tables with columns of
-- their own. Test fixture for adoption.

CREATE TABLE tenants (
    tenant uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_name text NOT NULL,
    email text NOT NULL,
    phone_number text NULL,
    plan text NOT NULL DEFAULT 'pro',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The host application's tables whose names Stepwise also uses, with columns of their own.
CREATE TABLE api_keys (
    api_key_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    api_key text NOT NULL UNIQUE,
    user_id uuid NULL,
    tenant uuid NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,
    description text NULL,
    active bool NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NULL
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant);

CREATE TABLE workflow_tasks (
    task_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant uuid NOT NULL REFERENCES tenants (tenant),
    execution_id text NULL,
    task_definition_id text NULL,
    title text NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    priority text NULL,
    due_date timestamptz NULL,
    context_data jsonb NULL,
    assigned_roles text[] NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workflow_tasks_tenant_status_idx ON workflow_tasks (tenant, status);

CREATE TABLE workflow_definitions (
    workflow_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant uuid NULL,
    key text NULL,
    name text NOT NULL,
    description text NULL,
    payload_schema_ref text NOT NULL,
    trigger jsonb NULL,
    draft_definition jsonb NOT NULL,
    draft_version integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'draft',
    created_by uuid NULL,
    updated_by uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    validation_status text NULL,
    validation_errors jsonb NULL,
    validation_warnings jsonb NULL,
    validated_at timestamptz NULL,
    is_system bool NOT NULL DEFAULT false,
    is_visible bool NOT NULL DEFAULT true,
    is_paused bool NOT NULL DEFAULT false,
    concurrency_limit integer NULL,
    auto_pause_on_failure bool NOT NULL DEFAULT false,
    failure_rate_threshold decimal(5, 2) NULL DEFAULT 0.5,
    failure_rate_min_runs integer NULL DEFAULT 10,
    retention_policy_override jsonb NULL,
    payload_schema_mode text NOT NULL DEFAULT 'pinned',
    pinned_payload_schema_ref text NULL,
    payload_schema_provenance text NULL,
    validation_context_json jsonb NULL,
    validation_payload_schema_hash text NULL
);
CREATE UNIQUE INDEX workflow_definitions_tenant_key_unique
    ON workflow_definitions (tenant, key) WHERE key IS NOT NULL;
CREATE INDEX idx_workflow_definitions_name ON workflow_definitions (name);
CREATE INDEX idx_workflow_definitions_tenant_status ON workflow_definitions (tenant, status);
CREATE INDEX idx_workflow_definitions_tenant_updated ON workflow_definitions (tenant, updated_at);
CREATE INDEX idx_workflow_definitions_tenant_name ON workflow_definitions (tenant, name);

CREATE TABLE workflow_definition_versions (
    version_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_id uuid NOT NULL REFERENCES workflow_definitions (workflow_id) ON DELETE CASCADE,
    tenant uuid NULL,
    version integer NOT NULL,
    definition_json jsonb NOT NULL,
    payload_schema_json jsonb NULL,
    published_by uuid NULL,
    published_at timestamptz NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    validation_status text NULL,
    validation_errors jsonb NULL,
    validation_warnings jsonb NULL,
    validated_at timestamptz NULL,
    CONSTRAINT workflow_definition_versions_workflow_version_unique UNIQUE (workflow_id, version)
);

CREATE TABLE workflow_runs (
    run_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_id uuid NOT NULL REFERENCES workflow_definitions (workflow_id) ON DELETE CASCADE,
    workflow_version integer NOT NULL,
    tenant uuid NULL,
    status text NOT NULL,
    node_path text NULL,
    input_json jsonb NULL,
    resume_event_payload jsonb NULL,
    resume_event_name text NULL,
    resume_error jsonb NULL,
    error_json jsonb NULL,
    lease_owner text NULL,
    lease_expires_at timestamptz NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    event_type text NULL,
    source_payload_schema_ref text NULL,
    trigger_mapping_applied bool NOT NULL DEFAULT false,
    trigger_type text NULL,
    trigger_metadata_json jsonb NULL,
    trigger_fire_key text NULL,
    engine text NULL,
    temporal_workflow_id text NULL,
    temporal_run_id text NULL,
    definition_hash text NULL,
    runtime_semantics_version text NULL,
    parent_run_id uuid NULL,
    root_run_id uuid NULL
);
CREATE INDEX idx_workflow_runs_status ON workflow_runs (status);
CREATE INDEX idx_workflow_runs_tenant_status ON workflow_runs (tenant, status);
CREATE INDEX idx_workflow_runs_workflow_status_updated
    ON workflow_runs (workflow_id, status, updated_at);
CREATE INDEX idx_workflow_runs_engine_status ON workflow_runs (engine, status);
CREATE INDEX idx_workflow_runs_event_type ON workflow_runs (event_type);
CREATE INDEX idx_workflow_runs_source_payload_schema_ref ON workflow_runs (source_payload_schema_ref);
CREATE INDEX idx_workflow_runs_trigger_mapping_applied ON workflow_runs (trigger_mapping_applied);
CREATE INDEX idx_workflow_runs_trigger_type ON workflow_runs (trigger_type);
CREATE UNIQUE INDEX workflow_runs_trigger_fire_key_unique
    ON workflow_runs (trigger_fire_key) WHERE trigger_fire_key IS NOT NULL;
CREATE INDEX idx_workflow_runs_temporal_workflow_id ON workflow_runs (temporal_workflow_id);

CREATE TABLE workflow_run_snapshots (
    snapshot_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
    tenant uuid NULL,
    step_path text NOT NULL,
    envelope_json jsonb NOT NULL,
    size_bytes integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_workflow_run_snapshots_run_path ON workflow_run_snapshots (run_id, step_path);

CREATE TABLE workflow_run_steps (
    step_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
    tenant uuid NULL,
    step_path text NOT NULL,
    definition_step_id text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    duration_ms integer NULL,
    error_json jsonb NULL,
    snapshot_id uuid NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz NULL
);
CREATE INDEX idx_workflow_run_steps_run_path ON workflow_run_steps (run_id, step_path);
CREATE INDEX idx_workflow_run_steps_run_step ON workflow_run_steps (run_id, step_id);

CREATE TABLE workflow_run_waits (
    wait_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
    tenant uuid NULL,
    step_path text NOT NULL,
    wait_type text NOT NULL,
    key text NULL,
    event_name text NULL,
    timeout_at timestamptz NULL,
    status text NOT NULL DEFAULT 'WAITING',
    payload jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz NULL
);
CREATE INDEX idx_workflow_run_waits_type_status ON workflow_run_waits (wait_type, status);
CREATE INDEX idx_workflow_run_waits_event_key ON workflow_run_waits (event_name, key, status);

CREATE TABLE workflow_action_invocations (
    invocation_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
    tenant uuid NULL,
    step_path text NOT NULL,
    action_id text NOT NULL,
    action_version integer NOT NULL,
    idempotency_key text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL DEFAULT 1,
    lease_owner text NULL,
    lease_expires_at timestamptz NULL,
    input_json jsonb NULL,
    output_json jsonb NULL,
    error_message text NULL,
    error_json jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NULL,
    completed_at timestamptz NULL,
    CONSTRAINT workflow_action_invocations_idempotency_unique
        UNIQUE (action_id, action_version, idempotency_key)
);
CREATE INDEX idx_workflow_action_invocations_run_path
    ON workflow_action_invocations (run_id, step_path);

CREATE TABLE workflow_runtime_events (
    event_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant uuid NULL,
    event_name text NOT NULL,
    correlation_key text NULL,
    payload jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NULL,
    matched_run_id uuid NULL,
    matched_wait_id uuid NULL,
    matched_step_path text NULL,
    error_message text NULL,
    payload_schema_ref text NULL,
    schema_ref_conflict jsonb NULL
);
CREATE INDEX idx_workflow_runtime_events_name_key
    ON workflow_runtime_events (event_name, correlation_key);
CREATE INDEX idx_workflow_runtime_events_created_at ON workflow_runtime_events (created_at);
CREATE INDEX idx_workflow_runtime_events_matched_run ON workflow_runtime_events (matched_run_id);
CREATE INDEX idx_workflow_runtime_events_payload_schema_ref
    ON workflow_runtime_events (payload_schema_ref);

CREATE TABLE workflow_run_logs (
    log_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    run_id uuid NOT NULL REFERENCES workflow_runs (run_id) ON DELETE CASCADE,
    tenant uuid NULL,
    step_id uuid NULL,
    step_path text NULL,
    level text NOT NULL,
    message text NOT NULL,
    context_json jsonb NULL,
    correlation_key text NULL,
    event_name text NULL,
    source text NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_workflow_run_logs_run_created ON workflow_run_logs (run_id, created_at);
CREATE INDEX idx_workflow_run_logs_run_level ON workflow_run_logs (run_id, level);
CREATE INDEX idx_workflow_run_logs_tenant_created ON workflow_run_logs (tenant, created_at);

CREATE TABLE workflow_data_store (
    tenant uuid NOT NULL REFERENCES tenants (tenant),
    store_id uuid NOT NULL DEFAULT gen_random_uuid(),
    namespace text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    value_type text NOT NULL DEFAULT 'json',
    revision bigint NOT NULL DEFAULT 1,
    expires_at timestamptz NULL,
    created_by_run_id uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, store_id),
    CONSTRAINT workflow_data_store_tenant_namespace_key_uk UNIQUE (tenant, namespace, key)
);
CREATE INDEX idx_workflow_data_store_tenant_namespace ON workflow_data_store (tenant, namespace);
CREATE INDEX idx_workflow_data_store_tenant_expires_at
    ON workflow_data_store (tenant, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE workflow_entity_links (
    tenant uuid NOT NULL REFERENCES tenants (tenant),
    link_id uuid NOT NULL DEFAULT gen_random_uuid(),
    namespace text NOT NULL,
    left_type text NOT NULL,
    left_id text NOT NULL,
    right_type text NOT NULL,
    right_id text NOT NULL,
    relation text NOT NULL DEFAULT 'related',
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_by_run_id uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, link_id),
    CONSTRAINT workflow_entity_links_tenant_typed_edge_uk
        UNIQUE (tenant, namespace, left_type, left_id, right_type, right_id, relation)
);
CREATE INDEX idx_workflow_entity_links_left
    ON workflow_entity_links (tenant, namespace, left_type, left_id);
CREATE INDEX idx_workflow_entity_links_right
    ON workflow_entity_links (tenant, namespace, right_type, right_id);

CREATE TABLE workflow_step_usage_periods (
    tenant uuid NOT NULL REFERENCES tenants (tenant) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    period_source text NOT NULL,
    stripe_subscription_id uuid NULL,
    effective_limit integer NULL,
    used_count integer NOT NULL DEFAULT 0,
    limit_source text NOT NULL,
    tier text NOT NULL,
    metadata_json jsonb NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, period_start, period_end),
    CHECK (period_start < period_end),
    CHECK (used_count >= 0),
    CHECK (effective_limit IS NULL OR effective_limit > 0)
);
CREATE INDEX idx_workflow_step_usage_periods_tenant_end
    ON workflow_step_usage_periods (tenant, period_end);
CREATE INDEX idx_workflow_step_usage_periods_end ON workflow_step_usage_periods (period_end);

CREATE TABLE tenant_workflow_schedule (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant uuid NULL,
    workflow_id uuid NOT NULL,
    workflow_version integer NULL,
    trigger_type varchar(32) NOT NULL,
    run_at timestamptz NULL,
    cron text NULL,
    timezone varchar(64) NULL,
    enabled bool NOT NULL DEFAULT true,
    status varchar(32) NOT NULL DEFAULT 'scheduled',
    job_id text NULL,
    runner_schedule_id text NULL,
    last_fire_at timestamptz NULL,
    next_fire_at timestamptz NULL,
    last_run_status text NULL,
    last_error text NULL,
    last_fire_key text NULL,
    name text NOT NULL,
    payload_json jsonb NOT NULL DEFAULT '{}'::jsonb,
    day_type_filter text NOT NULL DEFAULT 'any'
        CHECK (day_type_filter IN ('any', 'business', 'non_business')),
    business_hours_schedule_id uuid NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- knex's own ledger, as a reference database has it
CREATE TABLE knex_migrations (
    id serial PRIMARY KEY,
    name varchar(255),
    batch integer,
    migration_time timestamptz
);
INSERT INTO knex_migrations (name, batch, migration_time)
    VALUES ('20260716090000_add_error_json_to_workflow_action_invocations.cjs', 42, now());
