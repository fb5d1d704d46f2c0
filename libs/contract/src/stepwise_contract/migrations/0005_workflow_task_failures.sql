-- Runs whose Temporal workflow task keeps failing, and canceled runs whose workflow must still be
-- seen closed (the sweeper's task-failure and cancel-enforcement jobs). Additive; IF NOT EXISTS.

-- what the sweeper last read from Temporal about a failing workflow task (message, attempts,
-- since); NULL while the run's workflow tasks complete
ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS workflow_task_failure_json jsonb NULL;
-- set by a cancel; cleared once the sweeper has seen the Temporal workflow closed (or closed it)
ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS cancel_requested_at timestamptz NULL;

CREATE INDEX IF NOT EXISTS workflow_runs_task_failing_idx ON workflow_runs (run_id)
    WHERE workflow_task_failure_json IS NOT NULL;
CREATE INDEX IF NOT EXISTS workflow_runs_cancel_pending_idx ON workflow_runs (cancel_requested_at)
    WHERE cancel_requested_at IS NOT NULL;
