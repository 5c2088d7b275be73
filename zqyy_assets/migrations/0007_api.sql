-- The API's own tables: bearer tokens (stored hashed) and the mini-program chat.
CREATE SCHEMA IF NOT EXISTS biz;

-- A token is shown once when issued (`zqyy token issue`); only its SHA-256 is kept, so a
-- leaked table does not leak working tokens. Tokens are 256-bit random, so a fast hash is
-- enough (no password stretching needed). `subject` is the person or system holding it and
-- owns the chats opened with it; `site_ids` is the only set of sites it can read or write.
CREATE TABLE biz.api_tokens (
    id            bigserial PRIMARY KEY,
    token_hash    text NOT NULL UNIQUE,
    token_prefix  text NOT NULL,             -- first characters, to recognise a token in listings
    subject       text NOT NULL CHECK (subject <> ''),
    role          text NOT NULL CHECK (role IN ('admin', 'staff')),
    site_ids      bigint[] NOT NULL CHECK (cardinality(site_ids) > 0),
    note          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz
);

-- One conversation of one subject at one site, optionally tied to a page context
-- (contextType/contextId, e.g. a member's detail page), reused by that context.
CREATE TABLE biz.chat_sessions (
    id                  bigserial PRIMARY KEY,
    site_id             bigint NOT NULL,
    owner               text NOT NULL,        -- the token subject that opened it
    context_type        text NOT NULL DEFAULT 'general',
    context_id          text NOT NULL DEFAULT '',
    title               text NOT NULL DEFAULT '',
    bailian_session_id  text,                 -- DashScope's session id, sent back on the next turn
    last_message        text,
    last_message_at     timestamptz,
    message_count       integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_sessions_owner_idx ON biz.chat_sessions (site_id, owner, last_message_at DESC NULLS LAST, id DESC);
CREATE INDEX chat_sessions_context_idx ON biz.chat_sessions (site_id, owner, context_type, context_id);

-- status: complete; partial = the upstream stream broke and what arrived was kept;
-- error = a notice shown instead of an answer (never sent back to the model as context).
CREATE TABLE biz.chat_messages (
    id              bigserial PRIMARY KEY,
    chat_id         bigint NOT NULL REFERENCES biz.chat_sessions (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    status          text NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'partial', 'error')),
    tokens_used     integer,
    reference_card  jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_messages_chat_idx ON biz.chat_messages (chat_id, id);
