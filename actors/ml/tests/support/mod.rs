//! A small OpenAI-compatible HTTP server for the tests: real sockets, real HTTP, the OpenAI
//! wire format (JSON and server-sent events), plus failure injection and request records.
//!
//! It runs on its own thread with its own actix System, so the client under test shares
//! nothing with it but the TCP connection. The listener is bound before the thread starts,
//! so no test waits for it to come up.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The tool the chat scenario offers; asked for, the server calls it.
pub const TOOL_NAME: &str = "next_appointment";
/// The id the server gives that tool call.
pub const TOOL_CALL_ID: &str = "call_7Qx";
/// The arguments of that call, sent in [`TOOL_ARGUMENT_PIECES`] pieces when streamed.
pub const TOOL_ARGUMENTS: &str = r#"{"patient_id": "p-42", "department": "oncology"}"#;
const TOOL_ARGUMENT_PIECES: usize = 4;
const _: () = assert!(TOOL_ARGUMENT_PIECES > 1, "the arguments must span chunks");
/// The plain answer, streamed word by word.
pub const PLAIN_ANSWER: &str = "Radiotherapy sessions usually last a few minutes.";

/// One answer to give instead of the normal one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status, an optional `Retry-After`, and an OpenAI error body whose
    /// `message` is `message`.
    Status { status: u16, retry_after: Option<&'static str>, message: String },
    /// Wait this long, then answer normally.
    Slow(Duration),
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self::Status { status, retry_after: None, message: format!("injected {status}") }
    }
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub api_key: Option<String>,
    pub body: Value,
}

#[derive(Debug)]
pub struct State {
    faults: Mutex<VecDeque<Fault>>,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Dimension of the vectors answered.
    pub dimension: AtomicUsize,
    /// Answer each request after this many milliseconds.
    pub delay_ms: AtomicUsize,
    /// Milliseconds between two streamed events.
    pub event_gap_ms: AtomicUsize,
    /// Leave out the last vector (a wrong count).
    pub drop_last_vector: AtomicUsize,
    /// Stop a stream before its finish reason (a connection that breaks off).
    pub truncate_stream: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct FakeOpenAi {
    pub state: Arc<State>,
    pub base_url: String,
    pub port: u16,
    handle: ServerHandle,
}

impl FakeOpenAi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            faults: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            dimension: AtomicUsize::new(8),
            delay_ms: AtomicUsize::new(0),
            event_gap_ms: AtomicUsize::new(0),
            drop_last_vector: AtomicUsize::new(0),
            truncate_stream: AtomicUsize::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let data = web::Data::from(shared);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::JsonConfig::default().limit(16 * 1024 * 1024))
                        .route("/v1/embeddings", web::post().to(embeddings))
                        .route("/v1/chat/completions", web::post().to(chat_completions))
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).expect("send the server handle");
                server.await.expect("server runs");
            });
        });
        let handle = rx.recv().expect("the server started");
        Self { state, base_url: format!("http://127.0.0.1:{port}/v1"), port, handle }
    }

    /// Answer the next requests with these faults, in order, then normally.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        lock(&self.state.faults).extend(faults);
    }

    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    pub fn calls(&self) -> usize {
        lock(&self.state.seen).len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        });
    }
}

/// The vector the server gives `text`: deterministic, different for different texts.
pub fn vector_for(text: &str, dimension: usize) -> Vec<f32> {
    (0..dimension)
        .map(|i| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (i as u64);
            for b in text.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            // 0..=1000 mapped to -1.0..=1.0, exactly representable steps.
            ((h % 1001) as f32 - 500.0) / 500.0
        })
        .collect()
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<State>);

impl InFlight {
    fn enter(state: &Arc<State>) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(state))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Record the request, count it in flight, wait out the configured delay, and play the
/// next fault if one is queued. `Some(response)` is the fault's answer.
async fn prelude(state: &Arc<State>, req: &HttpRequest, body: &Value) -> (InFlight, Option<HttpResponse>) {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    lock(&state.seen).push(Seen {
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        authorization: header("authorization"),
        api_key: header("api-key"),
        body: body.clone(),
    });
    let guard = InFlight::enter(state);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let fault = lock(&state.faults).pop_front();
    match fault {
        None => (guard, None),
        Some(Fault::Slow(d)) => {
            actix_web::rt::time::sleep(d).await;
            (guard, None)
        }
        Some(Fault::Status { status, retry_after, message }) => {
            let code = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
            let mut resp = HttpResponse::build(code);
            if let Some(ra) = retry_after {
                resp.insert_header(("retry-after", ra));
            }
            let kind = if status == 429 {
                "rate_limit_exceeded"
            } else if status >= 500 {
                "server_error"
            } else {
                "invalid_request_error"
            };
            let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
            (guard, Some(resp.json(body)))
        }
    }
}

async fn embeddings(state: web::Data<State>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let state = state.into_inner();
    let (_guard, fault) = prelude(&state, &req, &body).await;
    if let Some(resp) = fault {
        return resp;
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect(),
        _ => return HttpResponse::BadRequest().json(json!({"error": {"message": "no input"}})),
    };
    let dimension = state.dimension.load(Ordering::SeqCst);
    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": vector_for(text, dimension)}))
        .collect();
    // Out of order on purpose: the client must sort by `index`.
    data.reverse();
    if state.drop_last_vector.load(Ordering::SeqCst) > 0 {
        data.pop();
    }
    HttpResponse::Ok().json(json!({
        "object": "list",
        "model": body["model"],
        "data": data,
        "usage": {"prompt_tokens": inputs.len() * 3, "total_tokens": inputs.len() * 3},
    }))
}

/// What the chat scenario answers: a tool call when the tool is offered and no result came
/// back yet, else text (quoting the tool result when there is one).
enum Answer {
    Text(String),
    ToolCall,
}

fn answer_for(body: &Value) -> Answer {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let tool_result =
        messages.iter().find(|m| m["role"] == "tool").and_then(|m| m["content"].as_str().map(str::to_owned));
    if let Some(result) = tool_result {
        return Answer::Text(format!("Your next appointment: {result}."));
    }
    let offers_tool =
        body["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == TOOL_NAME));
    if offers_tool { Answer::ToolCall } else { Answer::Text(PLAIN_ANSWER.to_owned()) }
}

const USAGE: (u32, u32) = (21, 9);

async fn chat_completions(state: web::Data<State>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    let state = state.into_inner();
    let (guard, fault) = prelude(&state, &req, &body).await;
    if let Some(resp) = fault {
        return resp;
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let answer = answer_for(&body);
    if body["stream"] == true {
        return stream_answer(&state, guard, &model, answer);
    }
    let (message, finish) = match answer {
        Answer::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Answer::ToolCall => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": TOOL_CALL_ID, "type": "function",
                "function": {"name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
            }]}),
            "tool_calls",
        ),
    };
    HttpResponse::Ok().json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1,
                  "total_tokens": USAGE.0 + USAGE.1},
    }))
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {chunk}\n\n")
}

/// The answer as server-sent events: text word by word, tool-call arguments in
/// [`TOOL_ARGUMENT_PIECES`] pieces, the finish reason, a usage chunk, then `[DONE]`.
fn stream_answer(state: &Arc<State>, guard: InFlight, model: &str, answer: Answer) -> HttpResponse {
    let mut events = vec![chunk(model, json!({"role": "assistant", "content": ""}), None)];
    let finish = match answer {
        Answer::Text(text) => {
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let end = rest[1..].find(' ').map_or(rest.len(), |i| i + 1);
                events.push(chunk(model, json!({"content": &rest[..end]}), None));
                rest = &rest[end..];
            }
            "stop"
        }
        Answer::ToolCall => {
            events.push(chunk(
                model,
                json!({"tool_calls": [{"index": 0, "id": TOOL_CALL_ID, "type": "function",
                                        "function": {"name": TOOL_NAME, "arguments": ""}}]}),
                None,
            ));
            let step = TOOL_ARGUMENTS.len().div_ceil(TOOL_ARGUMENT_PIECES);
            for piece in TOOL_ARGUMENTS.as_bytes().chunks(step) {
                let piece = std::str::from_utf8(piece).expect("ASCII arguments");
                events.push(chunk(
                    model,
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
            "tool_calls"
        }
    };
    if state.truncate_stream.load(Ordering::SeqCst) == 0 {
        events.push(chunk(model, json!({}), Some(finish)));
        let usage = json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": USAGE.0, "completion_tokens": USAGE.1,
                      "total_tokens": USAGE.0 + USAGE.1},
        });
        events.push(format!("data: {usage}\n\n"));
        events.push("data: [DONE]\n\n".to_owned());
    }
    let gap = Duration::from_millis(state.event_gap_ms.load(Ordering::SeqCst) as u64);
    let body = futures_util::stream::iter(events).then(move |event| async move {
        if !gap.is_zero() {
            actix_web::rt::time::sleep(gap).await;
        }
        Ok::<_, actix_web::Error>(Bytes::from(event))
    });
    // The in-flight count lasts until the last event is sent.
    let body = body.chain(futures_util::stream::once(async move {
        drop(guard);
        Ok(Bytes::new())
    }));
    HttpResponse::Ok().content_type("text/event-stream").insert_header(("cache-control", "no-cache")).streaming(body)
}
