-- Indexes for the sweeper's scans (SPEC §10). Additive; IF NOT EXISTS.

-- launch reconciliation walks the open, started runs to find those whose workflow is gone
CREATE INDEX IF NOT EXISTS workflow_runs_open_idx ON workflow_runs (run_id)
    WHERE status IN ('RUNNING', 'WAITING');

-- retention deletes a run's human tasks and stored payload blobs by run id
CREATE INDEX IF NOT EXISTS workflow_tasks_run_idx ON workflow_tasks (tenant, run_id);
CREATE INDEX IF NOT EXISTS workflow_payload_blobs_run_idx ON workflow_payload_blobs (tenant, run_id)
    WHERE run_id IS NOT NULL;
