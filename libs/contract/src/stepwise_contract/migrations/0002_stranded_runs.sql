-- Stranded-run migration (SPEC §2). Runs of the removed DB execution engine that were still in
-- flight can never progress again: mark them CANCELED, visibly, instead of leaving them RUNNING.
-- Idempotent: a second application finds no matching row.
UPDATE workflow_run_waits w
   SET status = 'CANCELED', resolved_at = now()
  FROM workflow_runs r
 WHERE w.run_id = r.run_id
   AND w.status = 'WAITING'
   AND (r.engine IS NULL OR r.engine <> 'temporal')
   AND r.status IN ('RUNNING', 'WAITING');

UPDATE workflow_runs
   SET status = 'CANCELED',
       completed_at = now(),
       updated_at = now(),
       error_json = jsonb_build_object(
           'message', 'Run canceled: the DB execution engine was removed; Temporal is the only engine. Replay the run to execute it on Temporal.',
           'stage', 'migration',
           'migration', '0002_stranded_runs')
 WHERE (engine IS NULL OR engine <> 'temporal')
   AND status IN ('RUNNING', 'WAITING');
