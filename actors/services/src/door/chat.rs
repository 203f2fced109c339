//! Chat: a user's sessions with the assistant and the exchange of one message for an answer.
//!
//! - **Sessions** belong to one user. The decision is the policies' (`chat.datalog`: the owner,
//!   and nobody else, administrators included); titles and messages are sealed with the owner's
//!   key before they reach the store, and deleted with the session.
//! - **An exchange** ([`ChatSessions::exchange`]) answers one message, streaming its events to
//!   a [`Sink`]: the emergency message first when the message describes one; then the model's
//!   answer with tools ([`agent`]) when an operator configured one, else — and whenever the model
//!   fails — a grounded answer quoted from the knowledge base; then suggestions. The question and
//!   the answer are stored in one transaction and the exchange is audited (never its text).
//! - **Confirmations** ([`ChatSessions::confirm`]): an action a tool prepared (a booking) runs
//!   only when its user says yes, through the same operation as the API's, with their own pass.
//!
//! The WebSocket and `POST …/messages` are two adapters over `exchange`.

pub mod agent;
pub mod tools;

use careport_domain::time::now_ms;
use careport_domain::{Code, Error};
use careport_store::chat::{self as stored, NewMessage, SessionRow};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::appointments::NewAppointment;
use super::page::{Page, PageRequest, decode_uuid};
use super::store_err;
use super::views::rfc3339;
use crate::Services;
use crate::access::{BookForPatient, DeleteChatSession, Pass, ReadChatSession, UseChat, WriteChatSession};
use crate::audit::{EventExt, outcome};
use crate::chat::grounded::{self, Labels, Source};
use crate::chat::{
    Cancel, ChatEvent, Citation, MAX_SUGGESTIONS, Mode, PendingAction, Sink, Suggestion, direction, safety,
};
use crate::identity::Caller;
use crate::vault::UserBox;

/// The six languages a session may speak.
pub const LANGUAGES: [&str; 6] = ["en", "es", "fr", "ar", "zh", "hi"];
/// Longest title, in characters.
const MAX_TITLE: usize = 200;

/// Chat sessions and exchanges.
pub struct ChatSessions<'a>(pub(crate) &'a Services);

/// `POST /chat/sessions`.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub title: Option<String>,
    pub language: Option<String>,
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub id: Uuid,
    pub title: String,
    pub language: String,
    /// `rtl` for Arabic.
    pub direction: &'static str,
    pub messages: i32,
    pub created_at: String,
    pub updated_at: String,
}

/// A new session: its id and the questions to start with.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub session: Session,
    pub suggestions: Vec<Suggestion>,
}

/// A session with its messages.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    #[serde(flatten)]
    pub session: Session,
    pub items: Vec<Message>,
}

/// What is sealed in a message's body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Body {
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// A stored message as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub created_at: String,
    #[serde(flatten)]
    pub body: Body,
}

/// An action waiting for the user's confirmation, as an answer carries it.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    pub id: Uuid,
    pub action: String,
    pub details: serde_json::Value,
}

/// The outcome of an exchange (`POST …/messages` answers it as it is).
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub message_id: Uuid,
    pub answer: String,
    pub citations: Vec<Citation>,
    pub mode: Mode,
    pub suggestions: Vec<Suggestion>,
    pub emergency: bool,
    pub stopped: bool,
    pub language: String,
    pub direction: &'static str,
    /// Actions that wait for a confirmation (`POST …/confirm`).
    pub pending: Vec<Confirmation>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(Code::InvalidValue, message)
}

fn title_context(session: Uuid) -> String {
    format!("chat-title:{session}")
}

fn opening_context(session: Uuid) -> String {
    format!("chat-opening:{session}")
}

fn message_context(session: Uuid, message: Uuid) -> String {
    format!("chat:{session}:{message}")
}

/// The text of an answer as it is being written: what was said, sent piece by piece.
pub(crate) struct Out<'a> {
    sink: &'a Sink,
    cancel: &'a Cancel,
    pub(crate) text: String,
    /// The client left or asked to stop.
    pub(crate) stopped: bool,
}

impl<'a> Out<'a> {
    fn new(sink: &'a Sink, cancel: &'a Cancel) -> Self {
        Self { sink, cancel, text: String::new(), stopped: false }
    }

    /// Say `text`, a word at a time. False once stopped.
    pub(crate) async fn say(&mut self, text: &str) -> bool {
        for piece in grounded::pieces(text) {
            if self.stopped || self.cancel.is_cancelled() {
                self.stopped = true;
                return false;
            }
            self.text.push_str(&piece);
            if !self.sink.send(ChatEvent::Token { text: piece }).await {
                self.stopped = true;
                return false;
            }
        }
        !self.stopped
    }

    /// Send an event that is not text. False once stopped.
    pub(crate) async fn event(&mut self, event: ChatEvent) -> bool {
        if !self.sink.send(event).await {
            self.stopped = true;
        }
        !self.stopped
    }

    pub(crate) fn cancel(&self) -> &Cancel {
        self.cancel
    }

    /// Start a new paragraph when something was said already.
    pub(crate) async fn paragraph(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.say("\n\n").await;
        }
    }
}

impl ChatSessions<'_> {
    async fn user_box(&self, user: Uuid) -> Result<UserBox, Error> {
        self.0.vault.user_box(user, true).await
    }

    fn view(&self, row: &SessionRow, keys: &UserBox) -> Session {
        // A title that does not open is shown empty rather than failing the whole list.
        let title = keys
            .open(&title_context(row.id), &row.title)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        Session {
            id: row.id,
            title,
            language: row.language.clone(),
            direction: direction(&row.language),
            messages: row.messages,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }

    /// The session's row, or 404 (the decision was made on its owner; it may be gone since).
    async fn row(&self, id: Uuid) -> Result<SessionRow, Error> {
        stored::get(&self.0.db, id).await.map_err(store_err)?.ok_or_else(|| Error::new(Code::NotFound))
    }

    /// Open a session in `language` (else the user's preferred one), with suggestions for the
    /// user's cancer types.
    pub async fn create(&self, pass: Pass<UseChat>, input: NewSession) -> Result<Created, Error> {
        let caller = pass.caller();
        let title = checked_title(input.title.as_deref().unwrap_or(""))?;
        let language = match input.language {
            Some(l) if LANGUAGES.contains(&l.as_str()) => l,
            Some(_) => return Err(invalid(format!("language must be one of {}.", LANGUAGES.join(", ")))),
            None => self.preferred_language(caller).await?,
        };
        let id = Uuid::now_v7();
        let suggestions = self.suggest(caller, &language, &[], &[], self.0.chat.config().suggestions).await;
        let keys = self.user_box(caller.user()).await?;
        let sealed_title = keys.seal(&title_context(id), title.as_bytes());
        let opening = serde_json::to_vec(&suggestions).map_err(|e| Error::internal(anyhow::anyhow!(e)))?;
        let sealed_opening = keys.seal(&opening_context(id), &opening);
        let new = stored::NewSession {
            id,
            user: caller.user(),
            title: &sealed_title,
            language: &language,
            opening: &sealed_opening,
            now: now_ms(),
        };
        stored::create(&self.0.db, &new).await.map_err(store_err)?;
        self.0
            .audit
            .one(caller.ctx.event("chat.session_created", outcome::SUCCESS).resource("chat_session", id))
            .await?;
        let row = self.row(id).await?;
        Ok(Created { session: self.view(&row, &keys), suggestions })
    }

    /// The suggestions a session opened with (none if they do not open: they are a courtesy).
    fn opening(&self, row: &SessionRow, keys: &UserBox) -> Vec<Suggestion> {
        keys.open(&opening_context(row.id), &row.opening)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    async fn preferred_language(&self, caller: &Caller) -> Result<String, Error> {
        let user = careport_store::users::find(&self.0.db, caller.user()).await.map_err(store_err)?;
        Ok(user
            .map(|u| u.preferred_language)
            .filter(|l| LANGUAGES.contains(&l.as_str()))
            .unwrap_or_else(|| "en".into()))
    }

    /// The caller's own sessions, newest first.
    pub async fn list(&self, pass: Pass<UseChat>, page: PageRequest) -> Result<Page<Session>, Error> {
        let caller = pass.caller();
        let limit = page.limit()?;
        let before = decode_uuid(page.cursor.as_deref())?;
        let rows = stored::list(&self.0.db, caller.user(), before, limit).await.map_err(store_err)?;
        let keys = self.user_box(caller.user()).await?;
        let items = rows.iter().map(|r| self.view(r, &keys)).collect();
        Ok(Page::of(items, limit, |s: &Session| s.id.to_string()))
    }

    /// A session with its messages.
    pub async fn get(&self, pass: Pass<ReadChatSession>) -> Result<Conversation, Error> {
        let caller = pass.caller();
        let row = self.row(pass.id()).await?;
        let keys = self.user_box(caller.user()).await?;
        let items = self.messages(&keys, row.id, None).await?;
        Ok(Conversation { session: self.view(&row, &keys), items })
    }

    /// The session's messages (the last `last`, or all), opened.
    async fn messages(&self, keys: &UserBox, session: Uuid, last: Option<usize>) -> Result<Vec<Message>, Error> {
        let rows = match last {
            Some(n) => stored::last_messages(&self.0.db, session, n as i64).await,
            None => stored::messages(&self.0.db, session).await,
        }
        .map_err(store_err)?;
        rows.into_iter()
            .map(|m| {
                let plain = keys.open(&message_context(session, m.id), &m.body)?;
                let body: Body = serde_json::from_slice(&plain).map_err(|_| Error::new(Code::IntegrityError))?;
                Ok(Message { id: m.id, role: m.role, created_at: rfc3339(m.created_at), body })
            })
            .collect()
    }

    /// Rename a session.
    pub async fn rename(&self, pass: Pass<WriteChatSession>, title: &str) -> Result<Session, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let title = checked_title(title)?;
        let keys = self.user_box(caller.user()).await?;
        let sealed = keys.seal(&title_context(id), title.as_bytes());
        if !stored::rename(&self.0.db, id, &sealed, now_ms()).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        self.0
            .audit
            .one(caller.ctx.event("chat.session_renamed", outcome::SUCCESS).resource("chat_session", id))
            .await?;
        Ok(self.view(&self.row(id).await?, &keys))
    }

    /// Delete a session and its messages.
    pub async fn delete(&self, pass: Pass<DeleteChatSession>) -> Result<(), Error> {
        let (caller, id) = (pass.caller(), pass.id());
        if !stored::delete(&self.0.db, id).await.map_err(store_err)? {
            return Err(Error::new(Code::NotFound));
        }
        self.0.chat.forget_session(id);
        self.0
            .audit
            .one(caller.ctx.event("chat.session_deleted", outcome::SUCCESS).resource("chat_session", id))
            .await?;
        Ok(())
    }

    /// Questions to ask next (`GET …/suggestions?count=`).
    pub async fn suggestions(
        &self,
        pass: Pass<ReadChatSession>,
        count: Option<usize>,
    ) -> Result<Vec<Suggestion>, Error> {
        let count = count.unwrap_or(self.0.chat.config().suggestions);
        if count == 0 || count > MAX_SUGGESTIONS {
            return Err(Error::with_message(Code::InvalidQuery, format!("count must be 1 to {MAX_SUGGESTIONS}.")));
        }
        let caller = pass.caller();
        let row = self.row(pass.id()).await?;
        let keys = self.user_box(caller.user()).await?;
        let history = self.messages(&keys, row.id, None).await?;
        let opening = self.opening(&row, &keys);
        Ok(self.suggest(caller, &row.language, &history, &opening, count).await)
    }

    /// Suggestions for this conversation (`history`: all of it; `opening`: what the session
    /// opened with); none rather than an error (they are a courtesy).
    async fn suggest(
        &self,
        caller: &Caller,
        language: &str,
        history: &[Message],
        opening: &[Suggestion],
        count: usize,
    ) -> Vec<Suggestion> {
        let asked: Vec<String> = history.iter().filter(|m| m.role == "user").map(|m| m.body.text.clone()).collect();
        let recent = asked[asked.len().saturating_sub(3)..].to_vec();
        let mut exclude = asked;
        exclude.extend(history.iter().flat_map(|m| m.body.suggestions.iter().map(|s| s.text.clone())));
        exclude.extend(opening.iter().map(|s| s.text.clone()));
        let cancer_types = self.cancer_types(caller).await;
        let msg = crate::chat::suggest::Suggest { language: language.to_owned(), cancer_types, recent, exclude, count };
        self.0.suggest.send(msg).await.unwrap_or_default()
    }

    /// The cancer types the caller's suggestions are about: a patient's assignments, a
    /// clinician's specializations; subtypes with their parent types.
    async fn cancer_types(&self, caller: &Caller) -> Vec<String> {
        let db = &self.0.db;
        let mut types: Vec<String> = match caller.role() {
            careport_domain::Role::Patient => careport_store::assignments::team(db, caller.user())
                .await
                .map(|t| t.into_iter().filter_map(|m| m.cancer_type_id).collect())
                .unwrap_or_default(),
            careport_domain::Role::Clinician => careport_store::clinicians::specializations(db, caller.user())
                .await
                .map(|s| s.into_iter().map(|s| s.cancer_type_id).collect())
                .unwrap_or_default(),
            careport_domain::Role::Admin => Vec::new(),
        };
        let mut with_parents = Vec::new();
        for t in types.drain(..) {
            if let Ok(Some(ct)) = careport_store::reference::cancer_type(db, &t).await
                && let Some(parent) = ct.parent_id
                && !with_parents.contains(&parent)
            {
                with_parents.push(t.clone());
                with_parents.push(parent);
                continue;
            }
            if !with_parents.contains(&t) {
                with_parents.push(t);
            }
        }
        with_parents
    }

    /// Answer `text` in the session: see the module doc. The events go to `sink`; `cancel`
    /// stops the answer where it is (what was said is kept, marked stopped).
    pub async fn exchange(
        &self,
        pass: &Pass<WriteChatSession>,
        text: &str,
        sink: &Sink,
        cancel: &Cancel,
    ) -> Result<Answer, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let cfg = self.0.chat.config().clone();
        let question = text.trim();
        if question.is_empty() || question.chars().count() > cfg.max_message_chars {
            return Err(invalid(format!("text must be 1 to {} characters.", cfg.max_message_chars)));
        }
        let _busy = self.0.chat.begin(id)?;
        let row = self.row(id).await?;
        let language = row.language.clone();
        let keys = self.user_box(caller.user()).await?;
        // All of it for the suggestions (nothing is suggested twice), the recent part for the model.
        let all = self.messages(&keys, id, None).await?;
        let history = &all[all.len().saturating_sub(cfg.history_messages)..];
        let message_id = Uuid::now_v7();
        let mut out = Out::new(sink, cancel);
        out.event(ChatEvent::Start { message_id, language: language.clone(), direction: direction(&language) }).await;

        // 1. An emergency is answered first, whatever comes after.
        let emergency = safety::detect(question).is_some();
        if emergency {
            out.say(&safety::emergency_message(&language, &cfg.emergency_number)).await;
            out.paragraph().await;
        }

        // 2. The model, when there is one; passages otherwise or when it fails.
        let mut pending = Vec::new();
        let (mode, citations) = match self.0.chat.provider() {
            Some(provider) if !out.stopped => {
                let run = agent::Run { services: self.0, caller, session: id, language: &language, provider };
                match run.answer(history, question, &mut out).await {
                    Ok(done) => {
                        pending = done.pending;
                        (Mode::Llm, done.citations)
                    }
                    Err(fallback) => {
                        self.0.chat.counters().fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        out.paragraph().await;
                        let note = self.string(&language, fallback.key(), &[]).await;
                        out.say(&note).await;
                        (Mode::Grounded, self.grounded(caller, &language, question, &mut out).await)
                    }
                }
            }
            _ => (Mode::Grounded, self.grounded(caller, &language, question, &mut out).await),
        };
        for c in &citations {
            let event =
                ChatEvent::Citation { document_id: c.document_id, chunk_id: c.chunk_id, title: c.title.clone() };
            if !out.event(event).await {
                break;
            }
        }
        if out.stopped && !out.text.ends_with('\n') {
            // Said so in the stored text too, so that a reload shows why it ends there.
            let note = self.string(&language, "chat.stopped", &[]).await;
            out.text.push_str(&format!(" … {note}"));
        }

        // 3. Suggestions that do not repeat the conversation.
        let asked = Message {
            id: Uuid::now_v7(),
            role: "user".into(),
            created_at: String::new(),
            body: Body { text: question.to_owned(), ..Body::default() },
        };
        let mut so_far = all.clone();
        so_far.push(asked.clone());
        let opening = self.opening(&row, &keys);
        let suggestions = self.suggest(caller, &language, &so_far, &opening, cfg.suggestions).await;

        // 4. The question and the answer, sealed, in one transaction; then the audit event.
        let answer = Body {
            text: out.text.clone(),
            citations: citations.clone(),
            mode: Some(mode),
            suggestions: suggestions.clone(),
            emergency,
            stopped: out.stopped,
        };
        let now = now_ms();
        let seal = |mid: Uuid, body: &Body| -> Result<String, Error> {
            let json = serde_json::to_vec(body).map_err(|e| Error::internal(anyhow::anyhow!(e)))?;
            Ok(keys.seal(&message_context(id, mid), &json))
        };
        let messages = [
            NewMessage { id: asked.id, role: "user", body: seal(asked.id, &asked.body)?, created_at: now },
            NewMessage { id: message_id, role: "assistant", body: seal(message_id, &answer)?, created_at: now },
        ];
        if stored::append(&self.0.db, id, &messages).await.map_err(store_err)?.is_none() {
            return Err(Error::new(Code::NotFound));
        }
        if row.messages == 0 && self.title_is_empty(&row, &keys) {
            let title: String = question.chars().take(60).collect();
            let sealed = keys.seal(&title_context(id), title.as_bytes());
            stored::rename(&self.0.db, id, &sealed, now).await.map_err(store_err)?;
        }
        let detail = format!(
            "mode {}, {} citations, emergency {emergency}, stopped {}",
            if mode == Mode::Llm { "llm" } else { "grounded" },
            citations.len(),
            out.stopped
        );
        self.0
            .audit
            .one(caller.ctx.event("chat.message", outcome::SUCCESS).resource("chat_session", id).detail(detail))
            .await?;

        let counters = self.0.chat.counters();
        let answered = if mode == Mode::Llm { &counters.answers_llm } else { &counters.answers_grounded };
        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if emergency {
            counters.emergencies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let stopped = out.stopped;
        let done = ChatEvent::Done {
            message_id,
            citations: citations.clone(),
            suggestions: suggestions.clone(),
            mode,
            emergency,
            stopped,
            direction: direction(&language),
        };
        sink.send(done).await;
        Ok(Answer {
            message_id,
            answer: answer.text,
            citations,
            mode,
            suggestions,
            emergency,
            stopped,
            direction: direction(&language),
            language,
            pending,
        })
    }

    fn title_is_empty(&self, row: &SessionRow, keys: &UserBox) -> bool {
        keys.open(&title_context(row.id), &row.title).map(|t| t.is_empty()).unwrap_or(false)
    }

    /// A chat string in `language`.
    pub(crate) async fn string(&self, language: &str, key: &str, args: &[(&str, &str)]) -> String {
        self.0.chat.strings().get(&self.0.plugins, language, key, args).await
    }

    /// Answer from the knowledge base: the passages the caller may find, their best sentences
    /// quoted. Returns the citations.
    async fn grounded(&self, caller: &Caller, language: &str, question: &str, out: &mut Out<'_>) -> Vec<Citation> {
        let cfg = self.0.chat.config();
        let hits = match self.0.access.pass::<crate::access::SearchKnowledge>(caller.clone(), None).await {
            Ok(pass) => {
                let query: String = question.chars().take(1000).collect();
                let input = super::knowledge::SearchInput {
                    query,
                    k: Some(cfg.passages),
                    cancer_type: None,
                    department: None,
                    language: None,
                    mode: None,
                };
                self.0.knowledge().search(pass, input).await.map(|r| r.items).unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        let labels = Labels {
            intro: self.string(language, "chat.excerpts_intro", &[]).await,
            sources: self.string(language, "chat.sources", &[]).await,
            nothing: self.string(language, "chat.no_passages", &[]).await,
        };
        let texts: Vec<&str> = hits.iter().map(|h| h.text.as_str()).collect();
        let picked = grounded::pick(question, &texts, cfg.grounded_sentences);
        let sources: Vec<Source> =
            hits.iter().map(|h| Source { title: h.title.clone(), heading: h.heading.clone() }).collect();
        let (text, cited) = grounded::compose(&picked, &sources, &labels);
        out.paragraph().await;
        out.say(&text).await;
        cited
            .into_iter()
            .filter_map(|i| hits.get(i))
            .map(|h| Citation {
                document_id: h.document_id,
                chunk_id: h.chunk_id,
                title: h.title.clone(),
                start: h.start,
                end: h.end,
            })
            .collect()
    }

    /// Answer an action waiting for confirmation: run it (`accept`) or drop it, say so in the
    /// session, and store that as an answer.
    pub async fn confirm(
        &self,
        pass: &Pass<WriteChatSession>,
        action: Uuid,
        accept: bool,
        sink: &Sink,
    ) -> Result<Answer, Error> {
        let (caller, id) = (pass.caller(), pass.id());
        let row = self.row(id).await?;
        let language = row.language.clone();
        // Busy first: a confirmation refused for that keeps its action for a retry.
        let _busy = self.0.chat.begin(id)?;
        let Some(pending) = self.0.chat.take(caller.user(), id, action) else {
            return Err(Error::with_message(
                Code::NotFound,
                "No action waits for this confirmation (it may have expired).",
            ));
        };
        let text = match (pending, accept) {
            (PendingAction::Book { clinician_id, starts_at, reason, .. }, true) => {
                let pass = self.0.access.pass::<BookForPatient>(caller.clone(), Some(caller.user())).await?;
                let booked =
                    self.0.appointments().book(pass, NewAppointment { clinician_id, starts_at, reason }).await?;
                self.string(&language, "chat.booked", &[("when", &booked.starts_at)]).await
            }
            (PendingAction::Book { .. }, false) => self.string(&language, "chat.not_booked", &[]).await,
        };
        let message_id = Uuid::now_v7();
        let cancel = Cancel::default();
        let mut out = Out::new(sink, &cancel);
        out.event(ChatEvent::Start { message_id, language: language.clone(), direction: direction(&language) }).await;
        out.say(&text).await;
        let keys = self.user_box(caller.user()).await?;
        let body = Body { text: text.clone(), mode: Some(Mode::Llm), ..Body::default() };
        let json = serde_json::to_vec(&body).map_err(|e| Error::internal(anyhow::anyhow!(e)))?;
        let sealed = keys.seal(&message_context(id, message_id), &json);
        let message = NewMessage { id: message_id, role: "assistant", body: sealed, created_at: now_ms() };
        if stored::append(&self.0.db, id, &[message]).await.map_err(store_err)?.is_none() {
            return Err(Error::new(Code::NotFound));
        }
        self.0
            .audit
            .one(
                caller
                    .ctx
                    .event("chat.confirmation", outcome::SUCCESS)
                    .resource("chat_session", id)
                    .detail(format!("action {action}, accepted {accept}")),
            )
            .await?;
        let done = ChatEvent::Done {
            message_id,
            citations: Vec::new(),
            suggestions: Vec::new(),
            mode: Mode::Llm,
            emergency: false,
            stopped: false,
            direction: direction(&language),
        };
        sink.send(done).await;
        Ok(Answer {
            message_id,
            answer: text,
            citations: Vec::new(),
            mode: Mode::Llm,
            suggestions: Vec::new(),
            emergency: false,
            stopped: false,
            direction: direction(&language),
            language,
            pending: Vec::new(),
        })
    }

    /// Decide writing to session `id` for `caller` again (each message of a socket is decided
    /// anew: the session may have been deleted, the user's rights may have changed).
    pub async fn writer(&self, caller: Caller, id: Uuid) -> Result<Pass<WriteChatSession>, Error> {
        self.0.access.pass(caller, Some(id)).await
    }
}

fn checked_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(invalid(format!("title must be at most {MAX_TITLE} characters, without control characters.")));
    }
    Ok(title.to_owned())
}
