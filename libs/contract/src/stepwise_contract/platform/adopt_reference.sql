-- Adoption of a reference-runtime database (its final, non-Citus schema), run once, before the
-- numbered migrations, in the same transaction as they are. Additive: columns Stepwise reads or
-- writes are added with defaults, NULLs Stepwise cannot read are backfilled, and the few reference
-- constraints that would refuse Stepwise's writes are relaxed. No reference column is dropped,
-- renamed or retyped here.

-- workflow_definitions: the router's trigger lookup column and the latest published version
-- (the reference computed it as max(version) at each read).
ALTER TABLE workflow_definitions
    ADD COLUMN IF NOT EXISTS trigger_event_name text NULL,
    ADD COLUMN IF NOT EXISTS latest_published_version int NULL,
    ADD COLUMN IF NOT EXISTS is_paused bool NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS concurrency_limit int NULL,
    ADD COLUMN IF NOT EXISTS validation_status text NULL,
    ADD COLUMN IF NOT EXISTS validation_errors jsonb NULL,
    ADD COLUMN IF NOT EXISTS validation_warnings jsonb NULL,
    ADD COLUMN IF NOT EXISTS validated_at timestamptz NULL,
    ALTER COLUMN payload_schema_ref DROP NOT NULL,
    ALTER COLUMN validation_errors SET DEFAULT '[]'::jsonb,
    ALTER COLUMN validation_warnings SET DEFAULT '[]'::jsonb;
UPDATE workflow_definitions
   SET trigger_event_name = trigger ->> 'eventName'
 WHERE trigger_event_name IS NULL AND jsonb_typeof(trigger) = 'object' AND trigger ? 'eventName';
UPDATE workflow_definitions d
   SET latest_published_version = v.latest
  FROM (SELECT workflow_id, max(version) AS latest
          FROM workflow_definition_versions GROUP BY workflow_id) v
 WHERE v.workflow_id = d.workflow_id AND d.latest_published_version IS NULL;
UPDATE workflow_definitions SET validation_errors = '[]'::jsonb WHERE validation_errors IS NULL;
UPDATE workflow_definitions SET validation_warnings = '[]'::jsonb WHERE validation_warnings IS NULL;

-- workflow_definition_versions: the hash is computed by migrate after this file (canonical JSON
-- is the same function the API uses at publish); published_at was nullable in the reference.
ALTER TABLE workflow_definition_versions
    ADD COLUMN IF NOT EXISTS definition_hash text NULL,
    ADD COLUMN IF NOT EXISTS payload_schema_json jsonb NULL,
    ALTER COLUMN published_at SET DEFAULT now();
UPDATE workflow_definition_versions
   SET published_at = coalesce(created_at, now())
 WHERE published_at IS NULL;

-- workflow_runs
ALTER TABLE workflow_runs
    ADD COLUMN IF NOT EXISTS launch_attempts int NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS idempotency_key text NULL,
    ADD COLUMN IF NOT EXISTS idempotency_hash text NULL,
    ADD COLUMN IF NOT EXISTS result_json jsonb NULL,
    ALTER COLUMN engine SET DEFAULT 'temporal',
    ALTER COLUMN input_json SET DEFAULT '{}'::jsonb;
UPDATE workflow_runs SET input_json = '{}'::jsonb WHERE input_json IS NULL;

-- workflow_run_steps
ALTER TABLE workflow_run_steps ADD COLUMN IF NOT EXISTS step_type text NULL;

-- workflow_action_invocations: Stepwise records one row per attempt, unique per tenant; the
-- reference's key ignored the tenant and the attempt, so a second attempt of a failed call
-- would be refused. The wider unique key replaces it (every existing row satisfies it).
ALTER TABLE workflow_action_invocations
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS error_json jsonb NULL,
    DROP CONSTRAINT IF EXISTS workflow_action_invocations_idempotency_unique;
DROP INDEX IF EXISTS workflow_action_invocations_idempotency_unique;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_action_invocations_attempt_uq
    ON workflow_action_invocations (tenant, action_id, action_version, idempotency_key, attempt);

-- workflow_runtime_events: the router's routing outcome columns and its dedupe key.
ALTER TABLE workflow_runtime_events
    ADD COLUMN IF NOT EXISTS event_type text NULL,
    ADD COLUMN IF NOT EXISTS correlation_keys text[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS signaled_run_ids uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS started_run_ids uuid[] NOT NULL DEFAULT '{}',
    ALTER COLUMN payload SET DEFAULT '{}'::jsonb;
UPDATE workflow_runtime_events SET payload = '{}'::jsonb WHERE payload IS NULL;
UPDATE workflow_runtime_events
   SET correlation_keys = ARRAY[correlation_key]
 WHERE correlation_key IS NOT NULL AND correlation_keys = '{}';
CREATE UNIQUE INDEX IF NOT EXISTS workflow_runtime_events_tenant_event_uq
    ON workflow_runtime_events (tenant, event_id);

-- workflow_data_store: a stored JSON null is a SQL NULL in Stepwise.
ALTER TABLE workflow_data_store ALTER COLUMN value DROP NOT NULL;

-- workflow_step_usage_periods: Stepwise counts per (tenant, period_start) and does not know the
-- reference's billing provenance columns; they get defaults so its inserts succeed.
ALTER TABLE workflow_step_usage_periods
    ALTER COLUMN period_source SET DEFAULT 'fallback_calendar',
    ALTER COLUMN limit_source SET DEFAULT 'tier_default',
    ALTER COLUMN tier SET DEFAULT 'stepwise';
CREATE UNIQUE INDEX IF NOT EXISTS workflow_step_usage_periods_start_uq
    ON workflow_step_usage_periods (tenant, period_start);
