//! The OpenAI-compatible provider: embeddings and chat completions (plain, streamed, with
//! tool calls) against OpenAI, Azure OpenAI, vLLM, Ollama or llama.cpp, through async-openai.
//!
//! [`OpenAiClient`] owns the connection pool, a semaphore bounding the requests in flight
//! (`llm.max_concurrency`; a streamed answer keeps its permit until it ends), the per-attempt
//! timeout and the retries with backoff. It is cheap to clone and is used from Tokio tasks;
//! a streamed answer is read on a task async-openai spawns.
//!
//! Patient text goes to whatever `llm.base_url` names: the runtime builds this client only
//! when an operator configured one. Nothing here logs prompts, answers or the key. (async-openai
//! itself logs, at `error` on target `async_openai::error`, a body that is not JSON at all; answers
//! are parsed to JSON values first and decoded here, so a well-formed answer is never logged.)
//!
//! # Layout
//! - [`config`]: `[llm]` settings.
//! - [`chat`]: careport's chat types and their translation to the wire format.
//! - [`error`]: [`ProviderError`] and which failures are retried.
//! - `transport`: the reqwest client, headers, the HTTP service under async-openai, the retry
//!   loop.

pub mod chat;
pub mod config;
pub mod error;
mod transport;

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::types::chat::{CreateChatCompletionResponse, CreateChatCompletionStreamResponse};
use async_openai::types::embeddings::{CreateEmbeddingRequest, CreateEmbeddingResponse, EmbeddingInput};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use chat::{ChatDelta, ChatMessage, ChatReply, ChatRequest, FinishReason, ToolCall, ToolDefinition, Usage};
pub use config::OpenAiConfig;
pub use error::ProviderError;

use crate::{EmbedError, EmbeddingProvider};
use chat::ToolCallAssembler;
use error::classify;
use transport::{Retry, WireConfig};

/// Most inputs sent in one `/embeddings` request (OpenAI's limit); larger batches are split.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// A client for one OpenAI-compatible server.
#[derive(Clone)]
pub struct OpenAiClient {
    inner: Arc<Inner>,
}

struct Inner {
    api: async_openai::Client<WireConfig>,
    base_url: String,
    embedding_model: Option<String>,
    chat_model: Option<String>,
    /// `openai/<embedding_model>`.
    model_id: String,
    retry: Retry,
    permits: Arc<Semaphore>,
    /// Learnt from the first embedding answer; every later answer must match it.
    dimension: OnceLock<usize>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.inner.base_url)
            .field("embedding_model", &self.inner.embedding_model)
            .field("chat_model", &self.inner.chat_model)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// The client `[llm]` asks for: `Ok(None)` when `llm.base_url` is unset (no external
    /// provider), else [`OpenAiClient::new`].
    pub fn from_config(cfg: OpenAiConfig) -> Result<Option<Self>, ProviderError> {
        match cfg.base_url {
            None => Ok(None),
            Some(_) => Self::new(cfg).map(Some),
        }
    }

    /// Check the settings and build the client; nothing is sent yet. Fails with
    /// [`ProviderError::Invalid`] naming the setting at fault (an unset `llm.base_url`
    /// included).
    pub fn new(cfg: OpenAiConfig) -> Result<Self, ProviderError> {
        let url = cfg.validate()?;
        let base_url = url.as_str().trim_end_matches('/').to_owned();
        let wire = WireConfig::new(&cfg, &base_url)?;
        let http = transport::http_client(&cfg)?;
        let service = tower::service_fn(move |factory| transport::send(http.clone(), factory));
        let api = async_openai::Client::with_config(wire).with_http_service(service);
        let model_id = format!("openai/{}", cfg.embedding_model.as_deref().unwrap_or(""));
        Ok(Self {
            inner: Arc::new(Inner {
                api,
                base_url,
                embedding_model: cfg.embedding_model,
                chat_model: cfg.chat_model,
                model_id,
                retry: Retry {
                    max_retries: cfg.max_retries,
                    backoff_base: Duration::from_millis(cfg.backoff_base_ms),
                    timeout: Duration::from_secs(cfg.timeout_secs),
                },
                permits: Arc::new(Semaphore::new(cfg.max_concurrency)),
                dimension: OnceLock::new(),
            }),
        })
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, ProviderError> {
        Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| ProviderError::Unavailable("the client is shutting down".into()))
    }

    /// Embed `texts` in as few requests as possible; one vector per text, in order, all of one
    /// dimension (the same as every earlier answer of this client).
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_inner(texts).await.map_err(EmbedError::from)
    }

    async fn embed_inner(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ProviderError> {
        let Some(model) = self.inner.embedding_model.clone() else {
            return Err(ProviderError::Unavailable("no embedding model is configured (`llm.embedding_model`)".into()));
        };
        if texts.is_empty() {
            return Err(ProviderError::Invalid("nothing to embed".into()));
        }
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(MAX_EMBEDDING_INPUTS) {
            vectors.extend(self.embed_batch(&model, batch.to_vec()).await?);
        }
        Ok(vectors)
    }

    async fn embed_batch(&self, model: &str, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ProviderError> {
        let count = texts.len();
        let request = CreateEmbeddingRequest {
            model: model.to_owned(),
            input: EmbeddingInput::StringArray(texts),
            ..CreateEmbeddingRequest::default()
        };
        let (api, request) = (&self.inner.api, &request);
        let _permit = self.permit().await?;
        let value = self
            .inner
            .retry
            .run("embeddings", move || async move {
                api.embeddings().create_byot::<_, serde_json::Value>(request).await.map_err(classify)
            })
            .await?;
        let response: CreateEmbeddingResponse = chat::decode(value, "the embeddings answer")?;
        let vectors = check_embeddings(response, count)?;
        let dim = vectors.first().map_or(0, Vec::len);
        let known = *self.inner.dimension.get_or_init(|| dim);
        if known != dim {
            return Err(ProviderError::BadResponse(format!(
                "the vectors now have {dim} dimensions, earlier ones had {known}"
            )));
        }
        Ok(vectors)
    }

    fn chat_model(&self) -> Result<&str, ProviderError> {
        self.inner
            .chat_model
            .as_deref()
            .ok_or_else(|| ProviderError::Unavailable("no chat model is configured (`llm.chat_model`)".into()))
    }

    /// Ask for one complete answer: text, tool calls, or both.
    pub async fn chat(&self, req: ChatRequest) -> Result<ChatReply, ProviderError> {
        let wire = chat::to_wire(&req, self.chat_model()?, false)?;
        let body = chat::to_json(&wire)?;
        let (api, body) = (&self.inner.api, &body);
        let _permit = self.permit().await?;
        let value =
            self.inner
                .retry
                .run("chat", move || async move {
                    api.chat().create_byot::<_, serde_json::Value>(body).await.map_err(classify)
                })
                .await?;
        let response: CreateChatCompletionResponse = chat::decode(value, "the chat answer")?;
        chat::reply_from_wire(response)
    }

    /// Ask for an answer streamed piece by piece: [`ChatDelta::Content`] as the text arrives,
    /// each [`ChatDelta::ToolCall`] once its pieces are joined, and [`ChatDelta::Finished`]
    /// last, after the server's `[DONE]`. An error ends the stream; errors before the first
    /// item are retried like any request, errors in the middle are not (text was already
    /// handed out). Dropping the stream cancels the request and frees its concurrency slot.
    pub fn chat_stream(&self, req: ChatRequest) -> ChatStream {
        let client = self.clone();
        let stream = futures_util::stream::unfold(StreamState::Start(Box::new((client, req))), |state| async move {
            match state {
                StreamState::Start(start) => {
                    let (client, req) = *start;
                    match client.open_stream(req).await {
                        Ok(open) => next_delta(open).await,
                        Err(e) => Some((Err(e), StreamState::Done)),
                    }
                }
                StreamState::Open(open) => next_delta(open).await,
                StreamState::Done => None,
            }
        });
        ChatStream { inner: stream.boxed() }
    }

    async fn open_stream(&self, req: ChatRequest) -> Result<Box<OpenStream>, ProviderError> {
        let wire = chat::to_wire(&req, self.chat_model()?, true)?;
        let body = chat::to_json(&wire)?;
        let (api, body) = (&self.inner.api, &body);
        let permit = self.permit().await?;
        let events = self
            .inner
            .retry
            .run("chat stream", move || async move {
                api.chat().create_stream_byot::<_, serde_json::Value>(body).await.map_err(classify)
            })
            .await?;
        Ok(Box::new(OpenStream {
            events,
            idle_timeout: self.inner.retry.timeout,
            assembler: ToolCallAssembler::default(),
            pending: VecDeque::new(),
            finish_reason: None,
            usage: None,
            ended: false,
            _permit: permit,
        }))
    }
}

/// Check an embeddings answer: one vector per input, each index once, one non-zero
/// dimension, finite values; returned in input order.
fn check_embeddings(response: CreateEmbeddingResponse, count: usize) -> Result<Vec<Vec<f32>>, ProviderError> {
    let mut data = response.data;
    if data.len() != count {
        return Err(ProviderError::BadResponse(format!("{} vectors for {count} texts", data.len())));
    }
    data.sort_by_key(|e| e.index);
    let mut out = Vec::with_capacity(count);
    for (position, item) in data.into_iter().enumerate() {
        if usize::try_from(item.index).ok() != Some(position) {
            return Err(ProviderError::BadResponse(format!(
                "vector index {} is repeated or out of range for {count} texts",
                item.index
            )));
        }
        out.push(item.embedding);
    }
    let dim = out.first().map_or(0, Vec::len);
    if dim == 0 {
        return Err(ProviderError::BadResponse("an empty vector".into()));
    }
    if let Some(bad) = out.iter().position(|v| v.len() != dim) {
        return Err(ProviderError::BadResponse(format!(
            "vector {bad} has {} dimensions, vector 0 has {dim}",
            out[bad].len()
        )));
    }
    if out.iter().flatten().any(|x| !x.is_finite()) {
        return Err(ProviderError::BadResponse("a vector holds NaN or infinity".into()));
    }
    Ok(out)
}

impl EmbeddingProvider for OpenAiClient {
    /// `openai/<llm.embedding_model>` (just `openai/` when none is configured; such a client
    /// cannot embed).
    fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    /// Unknown until the first answer, then the dimension of every vector.
    fn dimension(&self) -> Option<usize> {
        self.inner.dimension.get().copied()
    }

    fn embed(&self, texts: Vec<String>) -> BoxFuture<'static, Result<Vec<Vec<f32>>, EmbedError>> {
        let client = self.clone();
        Box::pin(async move { client.embed(texts).await })
    }
}

/// A streamed chat answer; see [`OpenAiClient::chat_stream`].
pub struct ChatStream {
    inner: BoxStream<'static, Result<ChatDelta, ProviderError>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatDelta, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

enum StreamState {
    Start(Box<(OpenAiClient, ChatRequest)>),
    Open(Box<OpenStream>),
    Done,
}

/// A stream whose response head has arrived.
struct OpenStream {
    events: async_openai::types::stream::StreamResponse<serde_json::Value>,
    /// Longest wait for the next event.
    idle_timeout: Duration,
    assembler: ToolCallAssembler,
    /// Items decoded from one event and not handed out yet.
    pending: VecDeque<ChatDelta>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    /// The events are over; only `pending` is left to hand out.
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

type Step = Option<(Result<ChatDelta, ProviderError>, StreamState)>;

/// Read events until there is something to hand out.
async fn next_delta(mut open: Box<OpenStream>) -> Step {
    loop {
        if let Some(delta) = open.pending.pop_front() {
            return Some((Ok(delta), StreamState::Open(open)));
        }
        if open.ended {
            return None;
        }
        let event = match tokio::time::timeout(open.idle_timeout, open.events.next()).await {
            Err(_elapsed) => return Some((Err(ProviderError::Timeout), StreamState::Done)),
            Ok(event) => event,
        };
        let result = match event {
            Some(Ok(value)) => absorb_event(&mut open, value),
            Some(Err(e)) => Err(classify(e).error),
            None => end_of_events(&mut open),
        };
        if let Err(e) = result {
            return Some((Err(e), StreamState::Done));
        }
    }
}

fn absorb_event(open: &mut OpenStream, value: serde_json::Value) -> Result<(), ProviderError> {
    let chunk: CreateChatCompletionStreamResponse = chat::decode(value, "a streamed chunk")?;
    if let Some(usage) = chunk.usage {
        open.usage = Some(chat::usage_from_wire(usage));
    }
    let mut out = Vec::new();
    // Only the first choice counts (careport never asks for more).
    for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(reason) = chat::absorb_choice(choice, &mut open.assembler, &mut out) {
            open.finish_reason = Some(reason);
            for call in open.assembler.finish()? {
                out.push(ChatDelta::ToolCall(call));
            }
        }
    }
    open.pending.extend(out);
    Ok(())
}

/// The events are over: queue any tool calls left, then `Finished`. A stream that ends with
/// no finish reason stopped halfway (async-openai ends the same way on `[DONE]` and on a
/// closed connection), and a partial answer must not pass for a whole one.
fn end_of_events(open: &mut OpenStream) -> Result<(), ProviderError> {
    open.ended = true;
    if open.finish_reason.is_none() {
        return Err(ProviderError::BadResponse("the stream ended before the model finished".into()));
    }
    let calls = open.assembler.finish()?;
    open.pending.extend(calls.into_iter().map(ChatDelta::ToolCall));
    open.pending.push_back(ChatDelta::Finished { finish_reason: open.finish_reason, usage: open.usage });
    Ok(())
}
