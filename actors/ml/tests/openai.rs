//! The OpenAI-compatible client against a real local HTTP server speaking the OpenAI wire
//! format ([`support::FakeOpenAi`]): embeddings, chat, streaming, a tool-call round trip,
//! retries, timeouts, the concurrency limit, credentials and TLS set-up.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use careport_ml::openai::{
    ChatDelta, ChatMessage, ChatReply, ChatRequest, FinishReason, OpenAiClient, OpenAiConfig, ProviderError, ToolCall,
    ToolDefinition, Usage,
};
use careport_ml::{EmbedError, EmbeddingProvider};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use support::{FakeOpenAi, Fault, PLAIN_ANSWER, TOOL_ARGUMENTS, TOOL_CALL_ID, TOOL_NAME, vector_for};

const KEY: &str = "sk-test-5a1b2c3d4e";

fn config(server: &FakeOpenAi) -> OpenAiConfig {
    OpenAiConfig {
        api_key: Some(SecretString::from(KEY)),
        embedding_model: Some("embed-small".into()),
        chat_model: Some("chat-small".into()),
        timeout_secs: 5,
        max_retries: 3,
        backoff_base_ms: 10,
        max_concurrency: 4,
        ..OpenAiConfig::new(&server.base_url)
    }
}

fn client(cfg: OpenAiConfig) -> OpenAiClient {
    OpenAiClient::new(cfg).expect("a valid configuration")
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("passage number {i} about chemotherapy")).collect()
}

fn tool() -> ToolDefinition {
    ToolDefinition {
        name: TOOL_NAME.into(),
        description: "The patient's next appointment".into(),
        parameters: json!({
            "type": "object",
            "properties": {"patient_id": {"type": "string"}, "department": {"type": "string"}},
            "required": ["patient_id"],
        }),
    }
}

async fn collect(stream: careport_ml::openai::ChatStream) -> Vec<Result<ChatDelta, ProviderError>> {
    stream.collect().await
}

fn text_of(deltas: &[Result<ChatDelta, ProviderError>]) -> String {
    deltas
        .iter()
        .filter_map(|d| match d {
            Ok(ChatDelta::Content(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

// ---- configuration ----------------------------------------------------------------------

#[test]
fn config_deserializes_every_key_and_rejects_unknown_ones() {
    let cfg: OpenAiConfig = serde_json::from_value(json!({
        "base_url": "https://api.openai.com/v1",
        "api_key": KEY,
        "embedding_model": "text-embedding-3-small",
        "chat_model": "gpt-4o-mini",
        "timeout_secs": 60,
        "max_retries": 3,
        "backoff_base_ms": 500,
        "max_concurrency": 8,
        "api_version": "2024-10-21",
    }))
    .expect("every key");
    assert_eq!(cfg.chat_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(cfg.api_version.as_deref(), Some("2024-10-21"));

    // The shipped defaults: limits only, no server. No provider, and no error.
    let defaults: OpenAiConfig = serde_json::from_value(json!({
        "timeout_secs": 60, "max_retries": 3, "backoff_base_ms": 500, "max_concurrency": 8,
    }))
    .expect("optional keys may be left out");
    assert!(defaults.base_url.is_none() && defaults.api_key.is_none());
    assert!(OpenAiClient::from_config(defaults.clone()).expect("not an error").is_none());
    match OpenAiClient::new(defaults) {
        Err(ProviderError::Invalid(m)) => assert!(m.contains("llm.base_url"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let ollama = OpenAiConfig { base_url: Some("http://127.0.0.1:11434/v1/".into()), ..cfg };
    assert!(OpenAiClient::from_config(ollama).expect("valid").is_some());

    let unknown = serde_json::from_value::<OpenAiConfig>(json!({
        "base_url": "http://x/v1", "timeout_secs": 1, "max_retries": 0, "backoff_base_ms": 1,
        "max_concurrency": 1, "temprature": 0.2,
    }));
    assert!(unknown.is_err(), "an unknown key must be an error");
}

#[test]
fn debug_output_never_shows_the_key() {
    let cfg = OpenAiConfig { api_key: Some(SecretString::from(KEY)), ..OpenAiConfig::new("https://api.openai.com/v1") };
    let shown = format!("{cfg:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("REDACTED"), "{shown}");
    let client = client(cfg);
    assert!(!format!("{client:?}").contains(KEY));
}

#[test]
fn bad_settings_are_refused_naming_the_key() {
    let cases = [
        (OpenAiConfig::new("not a url"), "llm.base_url"),
        (OpenAiConfig::new("ftp://host/v1"), "llm.base_url"),
        (OpenAiConfig::new("https://user:pw@host/v1"), "llm.base_url"),
        (OpenAiConfig::new("https://host/v1?api-version=1"), "llm.base_url"),
        (OpenAiConfig { max_concurrency: 0, ..OpenAiConfig::new("http://h/v1") }, "llm.max_concurrency"),
        (OpenAiConfig { timeout_secs: 0, ..OpenAiConfig::new("http://h/v1") }, "llm.timeout_secs"),
        (OpenAiConfig { chat_model: Some(" ".into()), ..OpenAiConfig::new("http://h/v1") }, "llm.chat_model"),
    ];
    for (cfg, key) in cases {
        match OpenAiClient::new(cfg) {
            Err(ProviderError::Invalid(m)) => assert!(m.contains(key), "{m}"),
            other => panic!("expected Invalid naming {key}, got {other:?}"),
        }
    }
}

// ---- TLS --------------------------------------------------------------------------------

#[test]
fn any_reqwest_client_builds_without_tls_set_up() {
    // Guards the TLS choice: with reqwest's `rustls-no-provider` (ring) this panics in a
    // process where nothing installed a rustls provider, and reqwest's features are shared
    // by every crate of a workspace build (the test harness builds reqwest clients too).
    reqwest::Client::builder().build().expect("a client with the default TLS provider");
}

#[tokio::test]
async fn https_clients_are_built_and_a_failed_handshake_is_unavailable() {
    client(OpenAiConfig::new("https://api.openai.com/v1"));

    // Speaking TLS to a plain-HTTP server fails the handshake: an error, no panic.
    let server = FakeOpenAi::start();
    let cfg = OpenAiConfig { max_retries: 1, ..config(&server) };
    let tls = client(OpenAiConfig { base_url: Some(format!("https://127.0.0.1:{}/v1", server.port)), ..cfg });
    match tls.embed(texts(1)).await {
        Err(EmbedError::Unavailable(m)) => assert!(!m.contains(KEY), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

// ---- embeddings -------------------------------------------------------------------------

#[tokio::test]
async fn embed_returns_one_vector_per_text_in_input_order() {
    let server = FakeOpenAi::start();
    let client = client(config(&server));
    let input = texts(5);
    let vectors = client.embed(input.clone()).await.expect("vectors");
    // The server answers in reverse order; the client sorts by index.
    let expected: Vec<Vec<f32>> = input.iter().map(|t| vector_for(t, 8)).collect();
    assert_eq!(vectors, expected);

    let seen = server.seen();
    assert_eq!(seen.len(), 1, "one batched request");
    assert_eq!(seen[0].path, "/v1/embeddings");
    assert_eq!(seen[0].body["model"], "embed-small");
    assert_eq!(seen[0].body["input"], json!(input));
}

#[tokio::test]
async fn the_embedding_provider_learns_its_dimension_and_rejects_a_change() {
    let server = FakeOpenAi::start();
    let provider: Arc<dyn EmbeddingProvider> = Arc::new(client(config(&server)));
    assert_eq!(provider.model_id(), "openai/embed-small");
    assert_eq!(provider.dimension(), None);

    let first = provider.embed(texts(2)).await.expect("vectors");
    assert_eq!(first[0].len(), 8);
    assert_eq!(provider.dimension(), Some(8));

    server.state.dimension.store(4, Ordering::SeqCst);
    match provider.embed(texts(2)).await {
        Err(EmbedError::BadResponse(m)) => assert!(m.contains('4') && m.contains('8'), "{m}"),
        other => panic!("expected BadResponse, got {other:?}"),
    }
    assert_eq!(provider.dimension(), Some(8));
}

#[tokio::test]
async fn a_missing_vector_is_a_bad_response() {
    let server = FakeOpenAi::start();
    server.state.drop_last_vector.store(1, Ordering::SeqCst);
    let client = client(config(&server));
    match client.embed(texts(3)).await {
        Err(EmbedError::BadResponse(m)) => assert!(m.contains("2 vectors for 3 texts"), "{m}"),
        other => panic!("expected BadResponse, got {other:?}"),
    }
}

#[tokio::test]
async fn an_empty_batch_and_a_missing_model_are_refused_without_a_request() {
    let server = FakeOpenAi::start();
    let configured = client(config(&server));
    assert!(matches!(configured.embed(Vec::new()).await, Err(EmbedError::Invalid(_))));
    let no_model = client(OpenAiConfig { embedding_model: None, ..config(&server) });
    assert!(matches!(no_model.embed(texts(1)).await, Err(EmbedError::Unavailable(_))));
    assert_eq!(server.calls(), 0);
}

// ---- credentials ------------------------------------------------------------------------

#[tokio::test]
async fn the_key_goes_in_the_authorization_header() {
    let server = FakeOpenAi::start();
    client(config(&server)).embed(texts(1)).await.expect("vectors");
    let keyless = client(OpenAiConfig {
        api_key: None,
        // A trailing slash is tolerated.
        base_url: Some(format!("{}/", server.base_url)),
        ..config(&server)
    });
    keyless.embed(texts(1)).await.expect("vectors");

    let seen = server.seen();
    assert_eq!(seen[0].authorization.as_deref(), Some(&*format!("Bearer {KEY}")));
    assert_eq!(seen[0].query, "");
    assert_eq!(seen[1].authorization, None, "no key, no header");
    assert_eq!(seen[1].path, "/v1/embeddings");
}

#[tokio::test]
async fn azure_api_version_adds_the_query_and_the_api_key_header() {
    let server = FakeOpenAi::start();
    let azure = client(OpenAiConfig { api_version: Some("2024-10-21".into()), ..config(&server) });
    azure.embed(texts(1)).await.expect("vectors");
    let seen = server.seen();
    assert_eq!(seen[0].query, "api-version=2024-10-21");
    assert_eq!(seen[0].api_key.as_deref(), Some(KEY));
    assert_eq!(seen[0].authorization, None);
}

// ---- retries and errors -----------------------------------------------------------------

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_until_success() {
    let server = FakeOpenAi::start();
    server.inject([
        Fault::status(500),
        Fault::Status { status: 429, retry_after: Some("0"), message: "slow down".into() },
        Fault::status(503),
    ]);
    let vectors = client(config(&server)).embed(texts(2)).await.expect("vectors");
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.calls(), 4, "three failures, then success");
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let server = FakeOpenAi::start();
    server.inject(std::iter::repeat_n(Fault::status(502), 5));
    let cfg = OpenAiConfig { max_retries: 2, ..config(&server) };
    match client(cfg).chat(ChatRequest::new(vec![ChatMessage::user("hi")])).await {
        Err(ProviderError::Unavailable(m)) => assert!(m.contains("502"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(server.calls(), 3, "one attempt and two retries");
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_message_is_not_repeated() {
    let server = FakeOpenAi::start();
    // Servers may echo the input in their message; it must not reach our errors.
    server.inject([Fault::Status {
        status: 400,
        retry_after: None,
        message: "bad input: 'my chest hurts at night'".into(),
    }]);
    let err = client(config(&server))
        .chat(ChatRequest::new(vec![ChatMessage::user("my chest hurts at night")]))
        .await
        .expect_err("400 fails");
    match &err {
        ProviderError::Invalid(m) => {
            assert!(m.contains("400") && m.contains("invalid_request_error"), "{m}");
            assert!(!m.contains("chest"), "{m}");
            assert!(!m.contains(KEY), "{m}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(server.calls(), 1, "no retry on 400");
}

#[tokio::test]
async fn a_long_retry_after_is_reported_instead_of_waited_out() {
    let server = FakeOpenAi::start();
    server.inject([Fault::Status { status: 429, retry_after: Some("120"), message: "rate limited".into() }]);
    let err = client(config(&server)).embed(texts(1)).await.expect_err("rate limited");
    assert_eq!(err.to_string(), EmbedError::Overloaded { retry_after_secs: 120 }.to_string());
    assert!(matches!(err, EmbedError::Overloaded { retry_after_secs: 120 }));
    // Reported, not waited out: a wait would end in a second call, and the server saw one.
    assert_eq!(server.calls(), 1);

    server.inject([Fault::Status { status: 429, retry_after: Some("120"), message: "rate limited".into() }]);
    let chat = client(config(&server)).chat(ChatRequest::new(vec![ChatMessage::user("hi")])).await;
    assert_eq!(chat, Err(ProviderError::RateLimited { retry_after: Some(Duration::from_secs(120)) }));
}

#[tokio::test]
async fn a_slow_answer_times_out_and_the_timeout_is_retried() {
    let server = FakeOpenAi::start();
    server.inject([Fault::Slow(Duration::from_secs(4))]);
    let cfg = OpenAiConfig { timeout_secs: 1, max_retries: 0, ..config(&server) };
    // The answer would come after 4 s: a timeout is the client giving up at its own 1 s, on
    // the one request it made.
    let calls = server.calls();
    let result = client(cfg.clone()).chat(ChatRequest::new(vec![ChatMessage::user("hi")])).await;
    assert_eq!(result, Err(ProviderError::Timeout));
    assert_eq!(server.calls(), calls + 1, "one request, no retry with max_retries = 0");

    server.inject([Fault::Slow(Duration::from_secs(4))]);
    let reply = client(OpenAiConfig { max_retries: 1, ..cfg })
        .chat(ChatRequest::new(vec![ChatMessage::user("hi")]))
        .await
        .expect("the retry answers in time");
    assert_eq!(reply.content.as_deref(), Some(PLAIN_ANSWER));
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = OpenAiConfig {
        max_retries: 1,
        backoff_base_ms: 1,
        embedding_model: Some("m".into()),
        ..OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"))
    };
    assert!(matches!(client(cfg).embed(texts(1)).await, Err(EmbedError::Unavailable(_))));
}

// ---- concurrency ------------------------------------------------------------------------

#[tokio::test]
async fn no_more_than_max_concurrency_requests_are_in_flight() {
    let server = FakeOpenAi::start();
    server.state.delay_ms.store(150, Ordering::SeqCst);
    let client = client(OpenAiConfig { max_concurrency: 2, ..config(&server) });
    let calls = (0..8).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.embed(vec![format!("text {i}")]).await })
    });
    for call in futures_util::future::join_all(calls).await {
        call.expect("task").expect("vectors");
    }
    assert_eq!(server.calls(), 8);
    assert_eq!(server.max_in_flight(), 2, "the limit holds and is used");
}

#[tokio::test]
async fn a_streamed_answer_holds_its_slot_until_it_is_dropped() {
    let server = FakeOpenAi::start();
    server.state.event_gap_ms.store(100, Ordering::SeqCst);
    let client = client(OpenAiConfig { max_concurrency: 1, ..config(&server) });
    let mut stream = client.chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]));
    let first = stream.next().await.expect("an item").expect("a delta");
    assert!(matches!(first, ChatDelta::Content(_)));

    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.embed(texts(1)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.calls(), 1, "the embedding waits for the stream's slot");
    drop(stream);
    waiting.await.expect("task").expect("vectors once the slot is free");
    assert_eq!(server.calls(), 2);
}

// ---- chat -------------------------------------------------------------------------------

#[tokio::test]
async fn chat_returns_the_answer_finish_reason_and_usage() {
    let server = FakeOpenAi::start();
    let request = ChatRequest {
        temperature: Some(0.2),
        max_tokens: Some(300),
        ..ChatRequest::new(vec![
            ChatMessage::system("You answer patients' questions."),
            ChatMessage::user("How long does radiotherapy take?"),
        ])
    };
    let reply = client(config(&server)).chat(request).await.expect("a reply");
    assert_eq!(
        reply,
        ChatReply {
            content: Some(PLAIN_ANSWER.into()),
            tool_calls: Vec::new(),
            finish_reason: Some(FinishReason::Stop),
            usage: Some(Usage { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 }),
        }
    );
    let body = &server.seen()[0].body;
    assert_eq!(body["model"], "chat-small");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "How long does radiotherapy take?");
    assert_eq!(body["max_completion_tokens"], 300);
    assert!(body.get("stream").is_none() || body["stream"] == false);
}

#[tokio::test]
async fn chat_without_a_model_or_messages_is_refused_without_a_request() {
    let server = FakeOpenAi::start();
    let no_model = client(OpenAiConfig { chat_model: None, ..config(&server) });
    assert!(matches!(
        no_model.chat(ChatRequest::new(vec![ChatMessage::user("hi")])).await,
        Err(ProviderError::Unavailable(_))
    ));
    assert!(matches!(client(config(&server)).chat(ChatRequest::default()).await, Err(ProviderError::Invalid(_))));
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a_streamed_answer_arrives_in_pieces_and_ends_with_finished() {
    let server = FakeOpenAi::start();
    let deltas = collect(client(config(&server)).chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]))).await;
    let pieces = deltas.iter().filter(|d| matches!(d, Ok(ChatDelta::Content(_)))).count();
    assert_eq!(pieces, PLAIN_ANSWER.split(' ').count(), "{deltas:?}");
    assert_eq!(text_of(&deltas), PLAIN_ANSWER);
    assert_eq!(
        deltas.last(),
        Some(&Ok(ChatDelta::Finished {
            finish_reason: Some(FinishReason::Stop),
            usage: Some(Usage { prompt_tokens: 21, completion_tokens: 9, total_tokens: 30 }),
        }))
    );
    let body = &server.seen()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_tool_call_round_trip_streams_the_call_then_the_answer_using_its_result() {
    let server = FakeOpenAi::start();
    let client = client(config(&server));
    let mut messages =
        vec![ChatMessage::system("Use tools to look things up."), ChatMessage::user("When is my next appointment?")];

    // 1. The model asks for the tool; its arguments arrive in several chunks.
    let first = collect(client.chat_stream(ChatRequest::new(messages.clone()).with_tools(vec![tool()]))).await;
    let calls: Vec<ToolCall> = first
        .iter()
        .filter_map(|d| match d {
            Ok(ChatDelta::ToolCall(c)) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        vec![ToolCall { id: TOOL_CALL_ID.into(), name: TOOL_NAME.into(), arguments: TOOL_ARGUMENTS.into() }],
        "{first:?}"
    );
    assert!(matches!(first.last(), Some(Ok(ChatDelta::Finished { finish_reason: Some(FinishReason::ToolCalls), .. }))));
    let args: serde_json::Value = calls[0].parse_arguments().expect("JSON arguments");
    assert_eq!(args["patient_id"], "p-42");

    // 2. Run the tool and send its result back.
    messages.push(ChatMessage::Assistant { content: None, tool_calls: calls.clone() });
    messages.push(ChatMessage::tool_result(&calls[0].id, "Tuesday 2030-01-08 at 09:30"));
    let second = collect(client.chat_stream(ChatRequest::new(messages).with_tools(vec![tool()]))).await;
    assert_eq!(text_of(&second), "Your next appointment: Tuesday 2030-01-08 at 09:30.");
    assert!(matches!(second.last(), Some(Ok(ChatDelta::Finished { finish_reason: Some(FinishReason::Stop), .. }))));

    // What went over the wire: the tool offered as a JSON schema, then the call echoed back
    // with its whole arguments and the result tied to its id.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let tools = &seen[0].body["tools"][0];
    assert_eq!(tools["type"], "function");
    assert_eq!(tools["function"]["name"], TOOL_NAME);
    assert_eq!(tools["function"]["parameters"]["required"], json!(["patient_id"]));
    let sent = &seen[1].body["messages"];
    assert_eq!(sent[2]["role"], "assistant");
    assert_eq!(sent[2]["tool_calls"][0]["id"], TOOL_CALL_ID);
    assert_eq!(sent[2]["tool_calls"][0]["function"]["arguments"], TOOL_ARGUMENTS);
    assert_eq!(sent[3]["role"], "tool");
    assert_eq!(sent[3]["tool_call_id"], TOOL_CALL_ID);
}

#[tokio::test]
async fn a_non_streamed_tool_call_round_trip_works_too() {
    let server = FakeOpenAi::start();
    let client = client(config(&server));
    let mut messages = vec![ChatMessage::user("When is my next appointment?")];
    let reply = client.chat(ChatRequest::new(messages.clone()).with_tools(vec![tool()])).await.expect("a reply");
    assert_eq!(reply.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(reply.content, None);
    assert_eq!(reply.tool_calls[0].arguments, TOOL_ARGUMENTS);

    messages.push(reply.to_message());
    messages.push(ChatMessage::tool_result(&reply.tool_calls[0].id, "Friday"));
    let answer = client.chat(ChatRequest::new(messages).with_tools(vec![tool()])).await.expect("a reply");
    assert_eq!(answer.content.as_deref(), Some("Your next appointment: Friday."));
}

#[tokio::test]
async fn a_stream_is_retried_before_it_starts() {
    let server = FakeOpenAi::start();
    server.inject([Fault::status(500), Fault::status(429)]);
    let deltas = collect(client(config(&server)).chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]))).await;
    assert_eq!(text_of(&deltas), PLAIN_ANSWER);
    assert!(deltas.iter().all(Result::is_ok), "{deltas:?}");
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn a_stream_that_breaks_off_is_an_error_not_a_short_answer() {
    let server = FakeOpenAi::start();
    server.state.truncate_stream.store(1, Ordering::SeqCst);
    let deltas = collect(client(config(&server)).chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]))).await;
    assert!(matches!(deltas.last(), Some(Err(ProviderError::BadResponse(_)))), "{deltas:?}");
    assert!(!deltas.iter().any(|d| matches!(d, Ok(ChatDelta::Finished { .. }))));
}

#[tokio::test]
async fn a_slow_but_steady_stream_outlives_the_timeout_and_a_stalled_one_does_not() {
    // Each gap (250 ms) is under the 1 s timeout, the whole answer (11 events) is not.
    let server = FakeOpenAi::start();
    server.state.event_gap_ms.store(250, Ordering::SeqCst);
    let cfg = OpenAiConfig { timeout_secs: 1, ..config(&server) };
    let started = Instant::now();
    let deltas = collect(client(cfg.clone()).chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]))).await;
    assert!(started.elapsed() > Duration::from_secs(1));
    assert_eq!(text_of(&deltas), PLAIN_ANSWER, "{deltas:?}");

    // A gap longer than the timeout ends the stream with Timeout.
    server.state.event_gap_ms.store(1500, Ordering::SeqCst);
    let deltas = collect(client(cfg).chat_stream(ChatRequest::new(vec![ChatMessage::user("hi")]))).await;
    assert_eq!(deltas.last(), Some(&Err(ProviderError::Timeout)), "{deltas:?}");
    // The head had arrived: the stall came mid-stream, which is not retried.
    assert_eq!(server.calls(), 2);
}
