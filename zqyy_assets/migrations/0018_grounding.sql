-- Grounded numbers (core/grounding): each answer's verdict, computed when it is stored from the
-- prompt it was given: {"version", "grounded", "numbers", "ungrounded_count",
-- "ungrounded": [{"number", "sentence", "field"}]}. NULL for rows written before this migration
-- and for apps that cite no figures (the chat).
ALTER TABLE biz.ai_cache ADD COLUMN grounding jsonb;

-- An answer with an ungrounded number, for an app whose check blocks (app2 by default), is kept
-- in the history as 'ungrounded': never served as the latest (readers take the newest 'valid'
-- row, so the previous good answer stays), never a memo hit, never pushed as cache_updated.
ALTER TABLE biz.ai_cache DROP CONSTRAINT ai_cache_status_check;
ALTER TABLE biz.ai_cache ADD CONSTRAINT ai_cache_status_check
    CHECK (status IN ('valid', 'invalidated', 'ungrounded'));
