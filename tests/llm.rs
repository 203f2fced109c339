//! A local OpenAI-compatible chat server for the chat tests and the chat benchmark: real
//! sockets, real HTTP, the OpenAI wire format (JSON and server-sent events). It plays a script:
//! each `/v1/chat/completions` request takes the next queued [`Reply`] (text, tool calls, an
//! error status, a stall), or, when the script is empty, answers a fixed sentence. Every request
//! body is kept, so a test can check exactly what left careport (masked identifiers, quoted
//! passages, the system prompt).
//!
//! It runs on its own thread with its own actix System: the app under test shares nothing with
//! it but the TCP connection.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the server answers when its script is empty.
pub const DEFAULT_ANSWER: &str = "Rest and drink water. Ask your care team about anything unusual.";

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Text, streamed a word at a time.
    Text(String),
    /// Tool calls: (name, arguments). Streamed with the arguments in pieces.
    Tools(Vec<(String, Value)>),
    /// An error status with an OpenAI error body.
    Status(u16),
    /// Wait this long before answering (the next reply in the script, or the default).
    Stall(Duration),
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Value>>,
    /// Milliseconds between two streamed events.
    gap_ms: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server; stopped when dropped.
pub struct FakeLlm {
    pub base_url: String,
    state: Arc<State>,
    handle: ServerHandle,
}

impl FakeLlm {
    /// Start on a free loopback port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    /// Start on `addr` (the benchmark uses a fixed port).
    pub fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).expect("bind the fake LLM");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::JsonConfig::default().limit(16 * 1024 * 1024))
                        .route("/v1/chat/completions", web::post().to(completions))
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("send the handle");
                server.await.expect("the fake LLM runs");
            });
        });
        let handle = rx.recv().expect("the fake LLM started");
        Self { base_url: format!("http://127.0.0.1:{port}/v1"), state, handle }
    }

    /// Queue replies, played in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.state.script).extend(replies);
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.state.seen).clone()
    }

    /// Milliseconds between streamed events (a model that writes at a fixed rate).
    pub fn set_gap_ms(&self, ms: u64) {
        self.state.gap_ms.store(ms, Ordering::SeqCst);
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "test-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

async fn completions(state: web::Data<State>, body: web::Json<Value>) -> HttpResponse {
    let body = body.into_inner();
    lock(&state.seen).push(body.clone());
    let mut reply = lock(&state.script).pop_front();
    while let Some(Reply::Stall(d)) = reply {
        actix_web::rt::time::sleep(d).await;
        reply = lock(&state.script).pop_front();
    }
    let reply = reply.unwrap_or_else(|| Reply::Text(DEFAULT_ANSWER.to_owned()));
    if let Reply::Status(status) = reply {
        let code = actix_web::http::StatusCode::from_u16(status).expect("a status");
        let kind = if status >= 500 { "server_error" } else { "invalid_request_error" };
        return HttpResponse::build(code).json(
            json!({"error": {"message": format!("scripted {status}"), "type": kind, "param": null, "code": null}}),
        );
    }
    let stream = body["stream"] == true;
    if !stream {
        let (message, finish) = match &reply {
            Reply::Tools(calls) => (
                json!({"role": "assistant", "content": null, "tool_calls": calls.iter().enumerate().map(|(i, (name, args))| json!({
                    "id": format!("call_{i}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}
                })).collect::<Vec<_>>()}),
                "tool_calls",
            ),
            Reply::Text(t) => (json!({"role": "assistant", "content": t}), "stop"),
            Reply::Status(_) | Reply::Stall(_) => unreachable!("handled above"),
        };
        return HttpResponse::Ok().json(json!({
            "id": "chatcmpl-test", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        }));
    }
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    let finish = match reply {
        Reply::Text(text) => {
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let end = rest.char_indices().skip(1).find(|(_, c)| *c == ' ').map_or(rest.len(), |(i, _)| i);
                events.push(chunk(json!({"content": &rest[..end]}), None));
                rest = &rest[end..];
            }
            "stop"
        }
        Reply::Tools(calls) => {
            for (i, (name, args)) in calls.iter().enumerate() {
                events.push(chunk(
                    json!({"tool_calls": [{"index": i, "id": format!("call_{i}"), "type": "function",
                        "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
                let text = args.to_string();
                let half = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
                for piece in [&text[..half], &text[half..]] {
                    events.push(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), None));
                }
            }
            "tool_calls"
        }
        Reply::Status(_) | Reply::Stall(_) => unreachable!("handled above"),
    };
    events.push(chunk(json!({}), Some(finish)));
    events.push("data: [DONE]\n\n".to_owned());
    let gap = Duration::from_millis(state.gap_ms.load(Ordering::SeqCst));
    let body = futures_util::stream::iter(events).then(move |event| async move {
        if !gap.is_zero() {
            actix_web::rt::time::sleep(gap).await;
        }
        Ok::<_, actix_web::Error>(Bytes::from(event))
    });
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("cache-control", "no-cache")).streaming(body)
}
