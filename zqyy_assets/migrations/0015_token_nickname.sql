-- A token's holder may have a display name (the chat app receives it as `Nickname` in its
-- biz_params, as the old backend sent the platform user's nickname). Empty: none.
ALTER TABLE biz.api_tokens ADD COLUMN nickname text NOT NULL DEFAULT '';
