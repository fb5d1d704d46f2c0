-- Definitions keep their authored key order (SPEC §3: `transform.assign` evaluates its entries in
-- order, each seeing the earlier ones). jsonb re-orders object keys (shorter keys first), so the
-- definition documents are stored as json, which keeps the text as written. Rows stored before this
-- migration keep the order jsonb gave them.
--
-- Not while adopting a reference database (`adoption.prepare` sets `stepwise.adopting`): these are
-- reference columns, whose type is never rewritten. There they stay jsonb, the services read and
-- write either type, and publish warns when the stored order would differ from the authored one.
DO $$
BEGIN
    IF coalesce(current_setting('stepwise.adopting', true), '') <> 'on' THEN
        ALTER TABLE workflow_definitions
            ALTER COLUMN draft_definition TYPE json USING draft_definition::json;
        ALTER TABLE workflow_definition_versions
            ALTER COLUMN definition_json TYPE json USING definition_json::json;
    END IF;
END
$$;
