//! Chat over HTTP and WebSocket: sessions (`/api/v1/chat/sessions`), one exchange without a
//! socket (`POST …/{id}/messages`), confirmations (`POST …/{id}/confirm`), suggestions, and the
//! streaming socket (`GET …/{id}/ws`), each an adapter over `careport_actors::door::chat`.
//!
//! # The socket
//! Each socket is a `ChatSocket` actor. It is decided like `POST …/messages` before the upgrade
//! (a refusal is a plain HTTP error), and counts against the user's socket limit. The client
//! sends JSON:
//! - `{type: "message", text}`: answered by `start`, `token`…, `tool`, `citation`, `confirm`,
//!   and `done` events (one answer at a time: another message meanwhile gets an `error`);
//! - `{type: "cancel"}`: stops the answer where it is (it ends with `done`, `stopped: true`);
//! - `{type: "confirm", id, accept?}`: runs (or drops) an action the answer prepared;
//! - `{type: "auth", token}`: a fresh access token of the same user, before the old expires.
//!
//! Every second the actor checks the token: revoked (logout, deactivation, password reset on
//! any node: the revocations reach every node) or expired, the socket gets an `error` event and
//! a policy close (1008). Each message is decided anew, so a session deleted meanwhile answers
//! 404. Answers are written as fast as the client reads: the exchange waits on a bounded channel,
//! so a slow reader slows the answer instead of filling memory, and a reader that takes more
//! than [`WRITE_TIMEOUT`] for one event is dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message};
use careport_actors::chat::{Cancel, ChatEvent, Sink, SocketGuard};
use careport_actors::door::chat::NewSession;
use careport_actors::door::page::PageRequest;
use careport_actors::{Caller, Services};
use careport_domain::{Code, Error};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::authn::{Authorized, DeleteChatSession, JsonBody, ReadChatSession, UseChat, WriteChatSession, client_info};
use super::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

/// The server pings this often; a client silent for three pings is dropped.
const PING_EVERY: Duration = Duration::from_secs(20);
/// The token is checked this often while a socket is open.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a client to take one event.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest frame a client may send.
const MAX_FRAME: usize = 64 * 1024;
/// Events buffered between an answer and its socket.
const EVENT_BUFFER: usize = 16;

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CACHE_CONTROL, "no-store"));
    b
}

/// `POST /api/v1/chat/sessions` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSessionBody {
    /// Up to 200 characters; unset: the first question names the session.
    pub title: Option<String>,
    /// `en`, `es`, `fr`, `ar`, `zh` or `hi`; unset: the user's preferred language.
    pub language: Option<String>,
}

/// Open a chat session: `201 {id, title, language, direction, messages, created_at, updated_at,
/// suggestions}`. The suggestions are questions for the user's cancer types.
#[utoipa::path(post, path = "/api/v1/chat/sessions", tag = "chat", request_body(content = NewSessionBody, description = "Optional"),
    responses((status = 201, description = "The session, with suggestions"), (status = 400, description = "Bad title or language", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(auth: Authorized<UseChat>, services: web::Data<Services>, body: JsonBody) -> Result<HttpResponse> {
    let b: NewSessionBody = body.parse_optional()?.unwrap_or_default();
    let created = services.chats().create(auth.pass, NewSession { title: b.title, language: b.language }).await?;
    Ok(no_store(HttpResponse::Created())
        .insert_header((header::LOCATION, format!("/api/v1/chat/sessions/{}", created.session.id)))
        .json(created))
}

/// Paging of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 200 (default 50).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The caller's own sessions, newest first: `{items, next_cursor}`.
#[utoipa::path(get, path = "/api/v1/chat/sessions", tag = "chat", params(PageQuery),
    responses((status = 200, description = "`{items, next_cursor}`")), security(("bearer" = [])))]
pub async fn list(auth: Authorized<UseChat>, services: web::Data<Services>, req: HttpRequest) -> Result<HttpResponse> {
    let q: PageQuery = super::authn::query(&req)?;
    let page = services.chats().list(auth.pass, PageRequest { limit: q.limit, cursor: q.cursor }).await?;
    Ok(no_store(HttpResponse::Ok()).json(page))
}

/// One session with its messages (`items`: `{id, role, text, created_at, citations?, mode?,
/// suggestions?, emergency?, stopped?}`). Only its owner reads it; anyone else gets 404.
#[utoipa::path(get, path = "/api/v1/chat/sessions/{id}", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 200, description = "The session and its messages"), (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(auth: Authorized<ReadChatSession>, services: web::Data<Services>) -> Result<HttpResponse> {
    Ok(no_store(HttpResponse::Ok()).json(services.chats().get(auth.pass).await?))
}

/// `PATCH /api/v1/chat/sessions/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBody {
    /// Up to 200 characters.
    pub title: String,
}

/// Rename a session.
#[utoipa::path(patch, path = "/api/v1/chat/sessions/{id}", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    request_body = RenameBody,
    responses((status = 200, description = "The session"), (status = 400, description = "Bad title", body = super::error::ErrorBody),
        (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rename(
    auth: Authorized<WriteChatSession>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b: RenameBody = body.parse()?;
    Ok(no_store(HttpResponse::Ok()).json(services.chats().rename(auth.pass, &b.title).await?))
}

/// Delete a session and its messages.
#[utoipa::path(delete, path = "/api/v1/chat/sessions/{id}", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(auth: Authorized<DeleteChatSession>, services: web::Data<Services>) -> Result<HttpResponse> {
    services.chats().delete(auth.pass).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `?count=` of the suggestions.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuggestionsQuery {
    /// 1 to 15 (default `chat.suggestions`, 4).
    pub count: Option<usize>,
}

/// Questions to ask next: `{items: [{text, cancer_type?}]}`, in the session's language, never
/// one already asked or suggested in it.
#[utoipa::path(get, path = "/api/v1/chat/sessions/{id}/suggestions", tag = "chat", params(("id" = Uuid, Path, description = "Session id"), SuggestionsQuery),
    responses((status = 200, description = "`{items}`"), (status = 400, description = "Bad count", body = super::error::ErrorBody),
        (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn suggestions(
    auth: Authorized<ReadChatSession>,
    services: web::Data<Services>,
    req: HttpRequest,
) -> Result<HttpResponse> {
    let q: SuggestionsQuery = super::authn::query(&req)?;
    let items = services.chats().suggestions(auth.pass, q.count).await?;
    Ok(no_store(HttpResponse::Ok()).json(json!({ "items": items })))
}

/// `POST /api/v1/chat/sessions/{id}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// 1 to 4,000 characters (`chat.max_message_chars`).
    pub text: String,
}

/// Ask a question and wait for the whole answer: `{message_id, answer, citations, mode:
/// "llm"|"grounded", suggestions, emergency, stopped, language, direction, pending}`. The same
/// exchange as the WebSocket's, without streaming. `pending` lists actions that wait for
/// `POST …/confirm`.
#[utoipa::path(post, path = "/api/v1/chat/sessions/{id}/messages", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    request_body = MessageBody,
    responses((status = 200, description = "The answer"), (status = 400, description = "Empty or too long", body = super::error::ErrorBody),
        (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody),
        (status = 409, description = "`chat_busy`: the session is answering another message", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn message(
    auth: Authorized<WriteChatSession>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b: MessageBody = body.parse()?;
    let answer = services.chats().exchange(&auth.pass, &b.text, &Sink::none(), &Cancel::default()).await?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}

/// `POST /api/v1/chat/sessions/{id}/confirm` body, and the socket's `confirm` message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The `id` of the `confirm` event (or of an item of `pending`).
    pub id: Uuid,
    /// `false` drops the action; default `true`.
    pub accept: Option<bool>,
}

/// Run (or drop) an action an answer prepared, such as a booking: it runs with the caller's own
/// rights, as its API call would. Answers like `…/messages`.
#[utoipa::path(post, path = "/api/v1/chat/sessions/{id}/confirm", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    request_body = ConfirmBody,
    responses((status = 200, description = "What was done"), (status = 404, description = "No such session or action (expired, or answered already)", body = super::error::ErrorBody),
        (status = 409, description = "`slot_taken` and the booking's other refusals", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn confirm(
    auth: Authorized<WriteChatSession>,
    services: web::Data<Services>,
    body: JsonBody,
) -> Result<HttpResponse> {
    let b: ConfirmBody = body.parse()?;
    let answer = services.chats().confirm(&auth.pass, b.id, b.accept.unwrap_or(true), &Sink::none()).await?;
    Ok(no_store(HttpResponse::Ok()).json(answer))
}

/// The chat socket: see the module doc for its messages and events.
#[utoipa::path(get, path = "/api/v1/chat/sessions/{id}/ws", tag = "chat", params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 101, description = "WebSocket of JSON events"),
        (status = 404, description = "No such session, or not yours", body = super::error::ErrorBody),
        (status = 429, description = "Too many chat sockets open for this user", body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn socket(
    auth: Authorized<WriteChatSession>,
    services: web::Data<Services>,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse> {
    super::authn::check_origin(&req, &services)?;
    let caller = auth.pass.caller().clone();
    let session = auth.pass.id();
    let guard = services.chat.open_socket(caller.user())?;
    let (response, ws, stream) = actix_ws::handle(&req, body)
        .map_err(|_| Error::with_message(Code::BadRequest, "This route speaks WebSocket only."))?;
    let client = client_info(&req);
    let services = services.into_inner();
    ChatSocket::create(move |ctx| {
        ctx.add_stream(stream.max_frame_size(MAX_FRAME));
        ChatSocket {
            services,
            caller,
            client,
            session,
            ws,
            current: None,
            unanswered: 0,
            closing: false,
            _guard: guard,
        }
    });
    Ok(response)
}

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Incoming {
    Message { text: String },
    Cancel {},
    Confirm { id: Uuid, accept: Option<bool> },
    Auth { token: String },
}

/// One chat WebSocket.
struct ChatSocket {
    services: Arc<Services>,
    caller: Caller,
    client: careport_actors::ClientInfo,
    session: Uuid,
    ws: actix_ws::Session,
    /// The answer being written, if any.
    current: Option<Cancel>,
    unanswered: u32,
    closing: bool,
    _guard: SocketGuard,
}

/// The answer being written has ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Ended;

impl Actor for ChatSocket {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(CHECK_EVERY, |this, ctx| this.check_token(ctx));
        ctx.run_interval(PING_EVERY, |this, ctx| {
            this.unanswered += 1;
            if this.unanswered > 3 {
                this.close(ctx, None);
                return;
            }
            let mut ws = this.ws.clone();
            ctx.spawn(
                async move {
                    let _ = ws.ping(b"").await;
                }
                .into_actor(this),
            );
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(c) = self.current.take() {
            c.cancel();
        }
    }
}

impl ChatSocket {
    /// Close for a revoked or expired token, saying why first.
    fn check_token(&mut self, ctx: &mut Context<Self>) {
        let token = &self.caller.token;
        let revoked = self.services.identity.revocations().is_revoked(token.claims().session);
        let expired = token.expires_at() <= SystemTime::now();
        if !revoked && !expired {
            return;
        }
        let code = if revoked { Code::TokenRevoked } else { Code::TokenExpired };
        self.close(ctx, Some(code));
    }

    /// Send an error event (if any) and close; the answer being written stops.
    fn close(&mut self, ctx: &mut Context<Self>, error: Option<Code>) {
        if self.closing {
            return;
        }
        self.closing = true;
        if let Some(c) = self.current.take() {
            c.cancel();
        }
        let mut ws = self.ws.clone();
        let reason =
            error.map(|code| CloseReason { code: CloseCode::Policy, description: Some(code.as_str().to_owned()) });
        let event = error.map(|code| error_event(&Error::new(code)));
        ctx.wait(
            async move {
                if let Some(e) = event {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.text(e)).await;
                }
                let _ = ws.close(reason).await;
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }

    fn send_error(&self, ctx: &mut Context<Self>, e: &Error) {
        let mut ws = self.ws.clone();
        let text = error_event(e);
        ctx.spawn(
            async move {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.text(text)).await;
            }
            .into_actor(self),
        );
    }

    /// Run an answer (a message, or a confirmation) on its own task, its events written to the
    /// socket in order, as fast as the client reads them.
    fn run(&mut self, ctx: &mut Context<Self>, work: Work) {
        if self.current.is_some() {
            self.send_error(ctx, &Error::new(Code::ChatBusy));
            return;
        }
        let cancel = Cancel::default();
        self.current = Some(cancel.clone());
        let services = Arc::clone(&self.services);
        let caller = self.caller.clone();
        let session = self.session;
        let ws = self.ws.clone();
        let me = ctx.address();
        actix_web::rt::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(EVENT_BUFFER);
            let sink = Sink::channel(tx);
            let forward = forward(rx, ws.clone(), cancel.clone());
            let answer = async {
                let chats = services.chats();
                let result = match chats.writer(caller, session).await {
                    Ok(pass) => match work {
                        Work::Message(text) => chats.exchange(&pass, &text, &sink, &cancel).await.map(|_| ()),
                        Work::Confirm { id, accept } => chats.confirm(&pass, id, accept, &sink).await.map(|_| ()),
                    },
                    Err(e) => Err(e),
                };
                drop(sink);
                result
            };
            let (result, ()) = tokio::join!(answer, forward);
            if let Err(e) = result {
                let mut ws = ws;
                let _ = tokio::time::timeout(WRITE_TIMEOUT, ws.text(error_event(&e))).await;
            }
            me.do_send(Ended);
        });
    }

    fn incoming(&mut self, ctx: &mut Context<Self>, text: &str) {
        let msg: Incoming = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                let e = Error::with_message(
                    Code::InvalidJson,
                    "Send {\"type\": \"message\", \"text\": …}, {\"type\": \"cancel\"}, {\"type\": \"confirm\", \"id\": …} or {\"type\": \"auth\", \"token\": …}.",
                );
                self.send_error(ctx, &e);
                return;
            }
        };
        match msg {
            Incoming::Message { text } => self.run(ctx, Work::Message(text)),
            Incoming::Confirm { id, accept } => self.run(ctx, Work::Confirm { id, accept: accept.unwrap_or(true) }),
            Incoming::Cancel {} => {
                if let Some(c) = &self.current {
                    c.cancel();
                }
            }
            Incoming::Auth { token } => match self.services.identity.authenticate(&token) {
                Ok(t) if t.claims().user == self.caller.user() && !t.is_attenuated() => {
                    self.caller = Caller::new(t, &self.client);
                }
                Ok(_) => self.send_error(ctx, &Error::new(Code::TokenInvalid)),
                Err(e) => self.send_error(ctx, &e),
            },
        }
    }
}

/// What an answer task does.
enum Work {
    Message(String),
    Confirm { id: Uuid, accept: bool },
}

/// Write an answer's events to the socket until the answer ends. A client that does not take an
/// event within [`WRITE_TIMEOUT`], or has gone, stops the answer.
async fn forward(mut rx: tokio::sync::mpsc::Receiver<ChatEvent>, mut ws: actix_ws::Session, cancel: Cancel) {
    while let Some(event) = rx.recv().await {
        let Ok(text) = serde_json::to_string(&event) else { continue };
        match tokio::time::timeout(WRITE_TIMEOUT, ws.text(text)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                cancel.cancel();
                // Keep draining so that the answer can finish and be stored.
                while rx.recv().await.is_some() {}
                return;
            }
        }
    }
}

fn error_event(e: &Error) -> String {
    json!({"type": "error", "code": e.code().as_str(), "message": e.message()}).to_string()
}

impl Handler<Ended> for ChatSocket {
    type Result = ();

    fn handle(&mut self, _: Ended, _: &mut Self::Context) {
        self.current = None;
    }
}

impl StreamHandler<std::result::Result<Message, actix_ws::ProtocolError>> for ChatSocket {
    fn handle(&mut self, msg: std::result::Result<Message, actix_ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(Message::Text(text)) => self.incoming(ctx, &text),
            Ok(Message::Ping(bytes)) => {
                let mut ws = self.ws.clone();
                ctx.spawn(
                    async move {
                        let _ = ws.pong(&bytes).await;
                    }
                    .into_actor(self),
                );
            }
            Ok(Message::Pong(_)) => self.unanswered = 0,
            Ok(Message::Close(_)) | Err(_) => self.close(ctx, None),
            Ok(Message::Binary(_)) => {
                self.send_error(ctx, &Error::with_message(Code::UnsupportedMediaType, "Send JSON text frames."))
            }
            Ok(Message::Continuation(_)) | Ok(Message::Nop) => {}
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        // The client went away.
        self.close(ctx, None);
    }
}

/// Register the routes.
pub fn config(cfg: &mut web::ServiceConfig) {
    use super::error::method_not_allowed;
    let r = |path: &str| web::resource(path).default_service(web::to(method_not_allowed));
    cfg.service(r("/api/v1/chat/sessions").post(create).get(list))
        .service(r("/api/v1/chat/sessions/{id}").get(get).patch(rename).delete(delete))
        .service(r("/api/v1/chat/sessions/{id}/suggestions").get(suggestions))
        .service(r("/api/v1/chat/sessions/{id}/messages").post(message))
        .service(r("/api/v1/chat/sessions/{id}/confirm").post(confirm))
        .service(r("/api/v1/chat/sessions/{id}/ws").get(socket));
}
