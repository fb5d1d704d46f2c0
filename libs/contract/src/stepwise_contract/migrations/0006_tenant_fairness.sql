-- Fair queuing on the shared task queue: every run starts with its tenant as Temporal's fairness
-- key, weighted by `tenants.fairness_weight` (a tenant with weight 3 is dispatched about three
-- times as often as one with weight 1 while both have a backlog), and with its priority
-- (1 = most urgent … 5) as Temporal's priority key. The run keeps the priority it started with.
ALTER TABLE tenants
    ADD COLUMN IF NOT EXISTS fairness_weight double precision NOT NULL DEFAULT 1.0;
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_fairness_weight_range;
ALTER TABLE tenants ADD CONSTRAINT tenants_fairness_weight_range
    CHECK (fairness_weight >= 0.001 AND fairness_weight <= 1000);

ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 3;
ALTER TABLE workflow_runs DROP CONSTRAINT IF EXISTS workflow_runs_priority_range;
-- NOT VALID: existing rows all hold the default; new and updated rows are checked, and a large
-- runs table is not scanned under the migration's lock.
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_priority_range
    CHECK (priority BETWEEN 1 AND 5) NOT VALID;
