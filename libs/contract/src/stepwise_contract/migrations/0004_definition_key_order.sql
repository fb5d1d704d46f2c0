-- Definitions keep their authored key order (SPEC §3: `transform.assign` evaluates its entries in
-- order, each seeing the earlier ones). jsonb re-orders object keys (shorter keys first), so the
-- definition documents are stored as json, which keeps the text as written. Rows stored before this
-- migration keep the order jsonb gave them.
ALTER TABLE workflow_definitions ALTER COLUMN draft_definition TYPE json USING draft_definition::json;
ALTER TABLE workflow_definition_versions ALTER COLUMN definition_json TYPE json USING definition_json::json;
