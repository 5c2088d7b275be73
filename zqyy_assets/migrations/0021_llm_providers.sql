-- Any OpenAI-compatible model, per-app routing and a fallback provider (core/llm/providers.py).
-- The ledger's provider may now be `openai`; a call made by the fallback provider names the
-- primary provider it stood in for (NULL for every other call).
ALTER TABLE biz.ai_call_ledger DROP CONSTRAINT IF EXISTS ai_call_ledger_provider_check;
ALTER TABLE biz.ai_call_ledger
    ADD CONSTRAINT ai_call_ledger_provider_check CHECK (provider IN ('dashscope', 'openai', 'offline')),
    ADD COLUMN fallback_for text CHECK (fallback_for IN ('dashscope', 'openai', 'offline'));
