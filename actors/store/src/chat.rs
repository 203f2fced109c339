//! Chat sessions and their messages (#16). The store sees only sealed text: a session's title
//! and each message's body are sealed by the service with the owner's key before they arrive
//! here, so these functions move opaque strings and the metadata around them (owner, language,
//! order, times). Deleting a session deletes its messages in the same transaction.

use uuid::Uuid;

use crate::db::Db;
use crate::sql::Sql;
use crate::{exec, fetch, scalar, transaction};

/// A session as stored (its title sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: String,
    pub language: String,
    pub messages: i32,
    /// The suggestions it opened with, sealed.
    pub opening: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A message as stored (its body sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub seq: i32,
    pub role: String,
    pub body: String,
    pub created_at: i64,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub role: &'static str,
    /// Sealed.
    pub body: String,
    pub created_at: i64,
}

static INSERT_SESSION: Sql = Sql::new(
    "INSERT INTO chat_sessions (id, user_id, title, language, messages, opening, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 0, $5, $6, $6)",
);
static GET_SESSION: Sql = Sql::new(
    "SELECT id, user_id, title, language, messages, opening, created_at, updated_at FROM chat_sessions WHERE id = $1",
);
static OWNER: Sql = Sql::new("SELECT user_id FROM chat_sessions WHERE id = $1");
static RENAME: Sql = Sql::new("UPDATE chat_sessions SET title = $2, updated_at = $3 WHERE id = $1");
static DELETE_MESSAGES: Sql = Sql::new("DELETE FROM chat_messages WHERE session_id = $1");
static DELETE_SESSION: Sql = Sql::new("DELETE FROM chat_sessions WHERE id = $1");
static DELETE_USER_MESSAGES: Sql =
    Sql::new("DELETE FROM chat_messages WHERE session_id IN (SELECT id FROM chat_sessions WHERE user_id = $1)");
static DELETE_USER_SESSIONS: Sql = Sql::new("DELETE FROM chat_sessions WHERE user_id = $1");
static NEXT_SEQ: Sql = Sql::new("SELECT messages FROM chat_sessions WHERE id = $1");
static INSERT_MESSAGE: Sql =
    Sql::new("INSERT INTO chat_messages (id, session_id, seq, role, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)");
static BUMP: Sql = Sql::new("UPDATE chat_sessions SET messages = messages + 1, updated_at = $2 WHERE id = $1");
static MESSAGES: Sql = Sql::new(
    "SELECT id, session_id, seq, role, body, created_at FROM chat_messages WHERE session_id = $1 ORDER BY seq",
);
static LAST_MESSAGES: Sql = Sql::new(
    "SELECT id, session_id, seq, role, body, created_at FROM chat_messages WHERE session_id = $1 \
     ORDER BY seq DESC LIMIT $2",
);

/// A session to open; `title` and `opening` sealed.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: Uuid,
    pub user: Uuid,
    pub title: &'a str,
    pub language: &'a str,
    pub opening: &'a str,
    pub now: i64,
}

/// Open a session.
pub async fn create(db: &Db, s: &NewSession<'_>) -> Result<(), sqlx::Error> {
    exec!(db.writer(), &INSERT_SESSION, s.id, s.user, s.title, s.language, s.opening, s.now)?;
    Ok(())
}

/// A session by id.
pub async fn get(db: &Db, id: Uuid) -> Result<Option<SessionRow>, sqlx::Error> {
    fetch!(db.reader(), SessionRow, fetch_optional, &GET_SESSION, id)
}

/// Whose a session is (for the access decision).
pub async fn owner(db: &Db, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    scalar!(db.reader(), Uuid, fetch_optional, &OWNER, id)
}

/// A page of `user`'s sessions, newest first, created before `before` (a session id; ids are
/// time-ordered).
pub async fn list(db: &Db, user: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<SessionRow>, sqlx::Error> {
    static FIRST: Sql = Sql::new(
        "SELECT id, user_id, title, language, messages, opening, created_at, updated_at FROM chat_sessions \
         WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
    );
    static AFTER: Sql = Sql::new(
        "SELECT id, user_id, title, language, messages, opening, created_at, updated_at FROM chat_sessions \
         WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    );
    match before {
        None => fetch!(db.reader(), SessionRow, fetch_all, &FIRST, user, limit),
        Some(b) => fetch!(db.reader(), SessionRow, fetch_all, &AFTER, user, b, limit),
    }
}

/// Set a session's (sealed) title.
pub async fn rename(db: &Db, id: Uuid, title: &str, now: i64) -> Result<bool, sqlx::Error> {
    Ok(exec!(db.writer(), &RENAME, id, title, now)? == 1)
}

/// Delete a session and its messages (one transaction). False when there was none.
pub async fn delete(db: &Db, id: Uuid) -> Result<bool, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        sqlx::query(DELETE_MESSAGES.text(dialect)).bind(id).execute(&mut *tx).await?;
        let n = sqlx::query(DELETE_SESSION.text(dialect)).bind(id).execute(&mut *tx).await?.rows_affected();
        Ok::<bool, sqlx::Error>(n == 1)
    })
}

/// Delete every session of `user` (an erased account keeps no conversations).
pub async fn delete_all_of(db: &Db, user: Uuid) -> Result<u64, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        sqlx::query(DELETE_USER_MESSAGES.text(dialect)).bind(user).execute(&mut *tx).await?;
        let n = sqlx::query(DELETE_USER_SESSIONS.text(dialect)).bind(user).execute(&mut *tx).await?.rows_affected();
        Ok::<u64, sqlx::Error>(n)
    })
}

/// Append messages to a session in order, in one transaction; returns the sequence number of
/// the first. `None` when the session is gone (deleted meanwhile): nothing is written.
pub async fn append(db: &Db, session: Uuid, messages: &[NewMessage]) -> Result<Option<i32>, sqlx::Error> {
    transaction!(db, |tx, dialect| {
        let Some(first) =
            sqlx::query_scalar::<_, i32>(NEXT_SEQ.text(dialect)).bind(session).fetch_optional(&mut *tx).await?
        else {
            return Ok(None);
        };
        for (i, m) in messages.iter().enumerate() {
            sqlx::query(INSERT_MESSAGE.text(dialect))
                .bind(m.id)
                .bind(session)
                .bind(first + i as i32)
                .bind(m.role)
                .bind(&m.body)
                .bind(m.created_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(BUMP.text(dialect)).bind(session).bind(m.created_at).execute(&mut *tx).await?;
        }
        Ok::<Option<i32>, sqlx::Error>(Some(first))
    })
}

/// Every message of a session, in order.
pub async fn messages(db: &Db, session: Uuid) -> Result<Vec<MessageRow>, sqlx::Error> {
    fetch!(db.reader(), MessageRow, fetch_all, &MESSAGES, session)
}

/// The last `n` messages of a session, in order (the conversation's recent context).
pub async fn last_messages(db: &Db, session: Uuid, n: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let mut rows = fetch!(db.reader(), MessageRow, fetch_all, &LAST_MESSAGES, session, n)?;
    rows.reverse();
    Ok(rows)
}
