//! The chat assistant's parts that are not operations: its settings, the events an answer is
//! streamed as, cancelling, the actions waiting for a user's confirmation, the per-node limits
//! (one answer at a time per session, sockets per user), and the deterministic pieces —
//! emergencies and diagnoses ([`safety`]), answers built from passages ([`grounded`]), the
//! prompt and the tools the model is offered ([`prompt`]), suggested questions ([`suggest`]).
//!
//! The operations themselves (sessions, an exchange, tools acting with the user's own rights)
//! are in [`crate::door::chat`]: every read a tool makes goes through the door with the caller's
//! own `Caller`, so the assistant can reach nothing its user could not read through the API.
//!
//! # Why the safety rules are code
//! A prompt asks; code makes sure. The emergency message is sent before anything the model
//! says, whatever it says; a sentence that presents a diagnosis is held back before it reaches
//! the user; retrieved text reaches the model only as quoted data inside a tool result. None of
//! this depends on the model behaving.

pub mod grounded;
pub mod prompt;
pub mod safety;
pub mod strings;
pub mod suggest;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use careport_domain::{Code, Error};
use careport_ml::openai::OpenAiClient;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

pub use suggest::{SuggestActor, Suggestion};

/// `[chat]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// The local emergency number put into the emergency message (112 reaches emergency
    /// services across the EU and from most mobile phones elsewhere; set yours).
    pub emergency_number: String,
    /// Model requests in one answer at most (each tool round is one); then the answer ends
    /// with what it has.
    pub max_steps: usize,
    /// Seconds one tool call may take.
    pub tool_timeout_secs: u64,
    /// Seconds a whole answer may take.
    pub answer_timeout_secs: u64,
    /// Open chat WebSockets per user on one node.
    pub max_sockets_per_user: usize,
    /// Earlier messages of the session given to the model as context.
    pub history_messages: usize,
    /// Longest question, in characters.
    pub max_message_chars: usize,
    /// Passages retrieved for an answer.
    pub passages: usize,
    /// Sentences of a grounded answer at most.
    pub grounded_sentences: usize,
    /// Suggestions sent with each answer (a request may ask for up to 15).
    pub suggestions: usize,
    /// Characters of a record's text a tool hands the model at most.
    pub max_tool_chars: usize,
    /// Seconds an action waits for the user's confirmation.
    pub confirm_ttl_secs: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            emergency_number: "112".into(),
            max_steps: 6,
            tool_timeout_secs: 15,
            answer_timeout_secs: 120,
            max_sockets_per_user: 3,
            history_messages: 12,
            max_message_chars: 4000,
            passages: 5,
            grounded_sentences: 4,
            suggestions: 4,
            max_tool_chars: 6000,
            confirm_ttl_secs: 600,
        }
    }
}

/// The most suggestions one request may ask for.
pub const MAX_SUGGESTIONS: usize = 15;

/// How an answer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// By the configured language model, with tools.
    Llm,
    /// From retrieved passages, quoted (no model, or the model failed).
    Grounded,
}

/// A passage an answer cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    pub document_id: Uuid,
    pub chunk_id: i64,
    pub title: String,
    /// The passage's place in its document, in characters.
    pub start: i64,
    pub end: i64,
}

/// What a tool call came to, as the user sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Running,
    Done,
    /// Refused as the API would refuse it (not found, not allowed, bad arguments).
    Refused,
    Failed,
}

/// One event of a streamed answer (`type` tags it on the wire).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The answer begins: its id, and how to lay it out.
    Start { message_id: Uuid, language: String, direction: &'static str },
    /// A piece of the answer's text.
    Token { text: String },
    /// A tool call started or ended.
    Tool { name: String, status: ToolStatus },
    /// A passage the answer draws on.
    Citation { document_id: Uuid, chunk_id: i64, title: String },
    /// An action that waits for the user: answer `{type: "confirm", id}` (or with
    /// `accept: false`) to go on.
    Confirm { id: Uuid, action: String, details: serde_json::Value },
    /// The answer is complete (or was stopped) and stored.
    Done {
        message_id: Uuid,
        citations: Vec<Citation>,
        suggestions: Vec<Suggestion>,
        mode: Mode,
        emergency: bool,
        stopped: bool,
        direction: &'static str,
    },
}

/// `rtl` for Arabic, else `ltr`.
pub fn direction(language: &str) -> &'static str {
    if language == "ar" { "rtl" } else { "ltr" }
}

/// Where an exchange sends its events: a bounded channel (a slow reader slows the answer
/// down: back-pressure, not buffering), or nowhere (the HTTP variant, which answers at the end).
#[derive(Clone, Default)]
pub struct Sink(Option<tokio::sync::mpsc::Sender<ChatEvent>>);

impl Sink {
    pub fn channel(tx: tokio::sync::mpsc::Sender<ChatEvent>) -> Self {
        Self(Some(tx))
    }

    pub fn none() -> Self {
        Self(None)
    }

    /// Send one event, waiting while the reader is behind. False when the reader has gone.
    pub async fn send(&self, event: ChatEvent) -> bool {
        match &self.0 {
            Some(tx) => tx.send(event).await.is_ok(),
            None => true,
        }
    }
}

/// A stop button shared by the socket and the answer it stops.
#[derive(Clone, Default)]
pub struct Cancel(Arc<(AtomicBool, Notify)>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// An action the model asked for that waits for the user's confirmation.
#[derive(Debug, Clone)]
pub struct Pending {
    pub user: Uuid,
    pub session: Uuid,
    pub action: PendingAction,
    pub expires: Instant,
}

/// The actions that need a confirmation.
#[derive(Debug, Clone)]
pub enum PendingAction {
    Book { clinician_id: Uuid, starts_at: String, reason: String, clinician: String },
}

impl PendingAction {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Book { .. } => "book_appointment",
        }
    }
}

/// The external model and what must happen before text goes to it.
#[derive(Clone)]
pub struct Provider {
    pub client: OpenAiClient,
    /// Where text goes (for the audit trail), without credentials.
    pub endpoint: String,
    /// Plugins every message and tool result passes through before it leaves (`llm.redact_with`).
    pub redact_with: Vec<String>,
}

/// The chat service's state on this node. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ChatConfig,
    provider: Option<Provider>,
    busy: Mutex<HashSet<Uuid>>,
    sockets: Mutex<HashMap<Uuid, usize>>,
    pending: Mutex<HashMap<Uuid, Pending>>,
    strings: strings::Strings,
    counters: ChatCounters,
}

/// This node's chat figures, for `/metrics`.
#[derive(Default)]
pub struct ChatCounters {
    pub answers_llm: AtomicU64,
    pub answers_grounded: AtomicU64,
    pub emergencies: AtomicU64,
    pub tool_calls: AtomicU64,
    /// Tool calls refused as the API would refuse them.
    pub tool_refusals: AtomicU64,
    /// Answers the model failed (or redaction stopped) and passages answered instead.
    pub fallbacks: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Chat {
    pub fn new(cfg: ChatConfig, provider: Option<Provider>) -> Self {
        Self {
            inner: Arc::new(Inner {
                cfg,
                provider,
                busy: Mutex::default(),
                sockets: Mutex::default(),
                pending: Mutex::default(),
                strings: strings::Strings,
                counters: ChatCounters::default(),
            }),
        }
    }

    pub fn config(&self) -> &ChatConfig {
        &self.inner.cfg
    }

    /// This node's figures.
    pub fn counters(&self) -> &ChatCounters {
        &self.inner.counters
    }

    /// Chat sockets open on this node.
    pub fn sockets_open(&self) -> usize {
        lock(&self.inner.sockets).values().sum()
    }

    /// The chat's sentences in each language.
    pub fn strings(&self) -> &strings::Strings {
        &self.inner.strings
    }

    /// The external model, when one is configured.
    pub fn provider(&self) -> Option<&Provider> {
        self.inner.provider.as_ref()
    }

    /// Mark `session` as answering; `chat_busy` when it already is. The guard frees it.
    pub fn begin(&self, session: Uuid) -> Result<BusyGuard, Error> {
        if !lock(&self.inner.busy).insert(session) {
            return Err(Error::new(Code::ChatBusy));
        }
        Ok(BusyGuard { chat: self.clone(), session })
    }

    /// Count a new socket of `user`; `too_many_requests` beyond the limit. The guard frees it.
    pub fn open_socket(&self, user: Uuid) -> Result<SocketGuard, Error> {
        let mut sockets = lock(&self.inner.sockets);
        let n = sockets.entry(user).or_insert(0);
        if *n >= self.inner.cfg.max_sockets_per_user {
            return Err(Error::with_message(
                Code::TooManyRequests,
                format!("At most {} chat connections per user are open at once.", self.inner.cfg.max_sockets_per_user),
            )
            .retry_after(5));
        }
        *n += 1;
        Ok(SocketGuard { chat: self.clone(), user })
    }

    /// Keep an action until the user confirms it; its id.
    pub fn hold(&self, user: Uuid, session: Uuid, action: PendingAction) -> Uuid {
        let id = Uuid::now_v7();
        let mut pending = lock(&self.inner.pending);
        let now = Instant::now();
        pending.retain(|_, p| p.expires > now);
        let expires = now + Duration::from_secs(self.inner.cfg.confirm_ttl_secs);
        pending.insert(id, Pending { user, session, action, expires });
        id
    }

    /// Take the action `id` of `user` in `session`, once; `None` when there is none (expired,
    /// already answered, or someone else's).
    pub fn take(&self, user: Uuid, session: Uuid, id: Uuid) -> Option<PendingAction> {
        let mut pending = lock(&self.inner.pending);
        match pending.get(&id) {
            Some(p) if p.user == user && p.session == session && p.expires > Instant::now() => {
                pending.remove(&id).map(|p| p.action)
            }
            _ => None,
        }
    }

    /// Forget every action waiting in `session` (it was deleted).
    pub fn forget_session(&self, session: Uuid) {
        lock(&self.inner.pending).retain(|_, p| p.session != session);
    }
}

/// While held, the session is answering.
pub struct BusyGuard {
    chat: Chat,
    session: Uuid,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        lock(&self.chat.inner.busy).remove(&self.session);
    }
}

/// While held, the socket counts against its user's limit.
pub struct SocketGuard {
    chat: Chat,
    user: Uuid,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let mut sockets = lock(&self.chat.inner.sockets);
        if let Some(n) = sockets.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                sockets.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answers_one_message_at_a_time() {
        let chat = Chat::new(ChatConfig::default(), None);
        let s = Uuid::now_v7();
        let guard = chat.begin(s).expect("first");
        assert_eq!(chat.begin(s).err().map(|e| e.code()), Some(Code::ChatBusy));
        drop(guard);
        assert!(chat.begin(s).is_ok());
    }

    #[test]
    fn sockets_per_user_are_limited_and_freed() {
        let cfg = ChatConfig { max_sockets_per_user: 2, ..ChatConfig::default() };
        let chat = Chat::new(cfg, None);
        let u = Uuid::now_v7();
        let a = chat.open_socket(u).expect("one");
        let _b = chat.open_socket(u).expect("two");
        assert_eq!(chat.open_socket(u).err().map(|e| e.code()), Some(Code::TooManyRequests));
        assert!(chat.open_socket(Uuid::now_v7()).is_ok(), "another user is not limited");
        drop(a);
        assert!(chat.open_socket(u).is_ok());
    }

    #[test]
    fn a_pending_action_is_taken_once_by_its_owner_in_its_session() {
        let chat = Chat::new(ChatConfig::default(), None);
        let (u, s) = (Uuid::now_v7(), Uuid::now_v7());
        let action = PendingAction::Book {
            clinician_id: Uuid::now_v7(),
            starts_at: "2030-01-01T09:00:00Z".into(),
            reason: String::new(),
            clinician: "Dr A".into(),
        };
        let id = chat.hold(u, s, action);
        assert!(chat.take(Uuid::now_v7(), s, id).is_none(), "another user");
        assert!(chat.take(u, Uuid::now_v7(), id).is_none(), "another session");
        assert!(chat.take(u, s, id).is_some());
        assert!(chat.take(u, s, id).is_none(), "only once");
    }

    #[tokio::test]
    async fn cancel_wakes_a_waiter_and_stays_cancelled() {
        let c = Cancel::default();
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.cancelled().await })
        };
        tokio::task::yield_now().await;
        c.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").expect("joined");
        assert!(c.is_cancelled());
        c.cancelled().await;
    }
}
