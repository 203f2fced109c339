-- Chat (#16): a user's conversations with the assistant. A session belongs to one user and
-- nobody else reads it, administrators included. Its title and every message are the owner's
-- PHI: sealed with the owner's user key (the vault's key of that user, wrapped by the master
-- key), so the store holds no readable text. Deleting a session deletes its messages.
CREATE TABLE chat_sessions (
    id         UUID    PRIMARY KEY,
    user_id    UUID    NOT NULL REFERENCES users (id),
    title      TEXT    NOT NULL,
    language   TEXT    NOT NULL REFERENCES languages (code),
    messages   INTEGER NOT NULL,
    -- The suggestions the session opened with (sealed JSON), so that none is suggested again.
    opening    TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);
CREATE INDEX chat_sessions_user ON chat_sessions (user_id, updated_at, id);

-- One message of a session: the user's question or the assistant's answer, in order. `body` is
-- sealed JSON ({text} for a question; {text, citations, mode, suggestions, ...} for an answer).
CREATE TABLE chat_messages (
    id         UUID    PRIMARY KEY,
    session_id UUID    NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('user', 'assistant')),
    body       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (session_id, seq)
);
