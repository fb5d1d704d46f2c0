-- Fair queuing on the shared task queue: every run starts with its tenant as Temporal's fairness
-- key, weighted by `tenants.fairness_weight` (a tenant with weight 3 is dispatched about three
-- times as often as one with weight 1 while both have a backlog), and with its priority
-- (1 = most urgent … 5) as Temporal's priority key. The run keeps the priority it started with.
ALTER TABLE tenants
    ADD COLUMN IF NOT EXISTS fairness_weight double precision NOT NULL DEFAULT 1.0;
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_fairness_weight_range;
ALTER TABLE tenants ADD CONSTRAINT tenants_fairness_weight_range
    CHECK (fairness_weight >= 0.001 AND fairness_weight <= 1000);

-- Priority keys are global: they order tasks before fairness does. So that a tenant cannot put
-- all its runs ahead of everyone else's by declaring `priority: 1`, the operator may cap how urgent
-- a tenant's runs can be (1 = uncapped); a run more urgent than the cap starts at the cap.
ALTER TABLE tenants
    ADD COLUMN IF NOT EXISTS most_urgent_priority smallint NOT NULL DEFAULT 1;
ALTER TABLE tenants DROP CONSTRAINT IF EXISTS tenants_most_urgent_priority_range;
ALTER TABLE tenants ADD CONSTRAINT tenants_most_urgent_priority_range
    CHECK (most_urgent_priority BETWEEN 1 AND 5);

ALTER TABLE workflow_runs ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 3;
ALTER TABLE workflow_runs DROP CONSTRAINT IF EXISTS workflow_runs_priority_range;
-- NOT VALID: existing rows all hold the default; new and updated rows are checked, and a large
-- runs table is not scanned under the migration's lock.
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_priority_range
    CHECK (priority BETWEEN 1 AND 5) NOT VALID;
