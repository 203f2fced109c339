//! The chat benchmark's two programs (`bench/chat.sh` runs them):
//!
//! - `chat_load fake-llm --port P --gap-ms G`: a local OpenAI-compatible server
//!   (`careport_tests::llm::FakeLlm`) that streams every answer a word at a time, one event each
//!   `G` ms, until killed.
//! - `chat_load load --url URL --token T --sessions N --seconds S --questions FILE [--think-ms
//!   MS] [--unique]`: N chat WebSockets of one user, each asking the questions of FILE (one per line) in
//!   turn for S seconds, one answer at a time per socket, pausing MS between an answer and the
//!   next question (0: back to back, the server saturated); prints time to first token (p50,
//!   p99), the answers per second, and the time between tokens of an answer. `--unique` makes
//!   every question a new text (numbered), so that no query vector is reused.
//!
//! Time to first token is measured from sending the message to the first `token` event.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What one socket measured.
#[derive(Default)]
struct Measured {
    first_token_ms: Vec<f64>,
    /// From sending the question to the `done` event.
    answer_ms: Vec<f64>,
    /// Mean gap between consecutive tokens of each answer.
    token_gap_ms: Vec<f64>,
    tokens: usize,
    answers: usize,
    errors: usize,
}

async fn one_socket(
    url: String,
    token: String,
    questions: Vec<String>,
    until: Instant,
    offset: usize,
    think: Duration,
    unique: bool,
) -> Measured {
    let client = awc::Client::builder().timeout(Duration::from_secs(120)).finish();
    let mut m = Measured::default();
    let created = client
        .post(format!("{url}/api/v1/chat/sessions"))
        .bearer_auth(&token)
        .send_json(&json!({"language": "en"}))
        .await;
    let Ok(mut created) = created else {
        m.errors += 1;
        return m;
    };
    let Ok(session) = created.json::<Value>().await else {
        m.errors += 1;
        return m;
    };
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let ws_url = format!("{}/api/v1/chat/sessions/{id}/ws", url.replace("http://", "ws://"));
    let Ok((_, mut socket)) = client.ws(ws_url).bearer_auth(&token).connect().await else {
        m.errors += 1;
        return m;
    };
    let mut n = offset;
    // Sessions with a pause between questions start spread over one pause.
    if !think.is_zero() {
        tokio::time::sleep(think.mul_f64((offset % 50) as f64 / 50.0)).await;
    }
    while Instant::now() < until {
        let q = &questions[n % questions.len()];
        // A question never asked before (no vector of it kept anywhere) when `unique`.
        let q = if unique { format!("{q} (session {offset}, question {n})") } else { q.clone() };
        n += 1;
        let sent = Instant::now();
        let msg = json!({"type": "message", "text": q}).to_string();
        if socket.send(awc::ws::Message::Text(msg.into())).await.is_err() {
            m.errors += 1;
            return m;
        }
        let mut first: Option<Instant> = None;
        let mut last = sent;
        let mut tokens = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), socket.next()).await {
                Ok(Some(Ok(awc::ws::Frame::Text(t)))) => {
                    let v: Value = serde_json::from_slice(&t).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("token") => {
                            let now = Instant::now();
                            if first.is_none() {
                                first = Some(now);
                            }
                            last = now;
                            tokens += 1;
                        }
                        Some("done") => {
                            m.answer_ms.push(sent.elapsed().as_secs_f64() * 1e3);
                            break;
                        }
                        Some("error") => {
                            m.errors += 1;
                            break;
                        }
                        _ => {}
                    }
                }
                Ok(Some(Ok(awc::ws::Frame::Ping(p)))) => {
                    let _ = socket.send(awc::ws::Message::Pong(p)).await;
                }
                Ok(Some(Ok(_))) => {}
                _ => {
                    m.errors += 1;
                    return m;
                }
            }
        }
        if let Some(f) = first {
            m.first_token_ms.push(f.duration_since(sent).as_secs_f64() * 1e3);
            if tokens > 1 {
                m.token_gap_ms.push(last.duration_since(f).as_secs_f64() * 1e3 / (tokens - 1) as f64);
            }
            m.tokens += tokens;
            m.answers += 1;
        }
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
    }
    m
}

async fn load(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let token = arg(args, "--token").expect("--token");
    let sessions: usize = arg(args, "--sessions").map_or(50, |s| s.parse().expect("--sessions"));
    let seconds: u64 = arg(args, "--seconds").map_or(20, |s| s.parse().expect("--seconds"));
    let file = arg(args, "--questions").expect("--questions");
    let unique = args.iter().any(|a| a == "--unique");
    let think = Duration::from_millis(arg(args, "--think-ms").map_or(0, |t| t.parse().expect("--think-ms")));
    let questions: Vec<String> = std::fs::read_to_string(&file)
        .expect("questions file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..sessions)
        .map(|i| {
            actix_web::rt::spawn(one_socket(url.clone(), token.clone(), questions.clone(), until, i, think, unique))
        })
        .collect();
    let mut all = Measured::default();
    for t in tasks {
        let m = t.await.expect("socket task");
        all.first_token_ms.extend(m.first_token_ms);
        all.answer_ms.extend(m.answer_ms);
        all.token_gap_ms.extend(m.token_gap_ms);
        all.tokens += m.tokens;
        all.answers += m.answers;
        all.errors += m.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.first_token_ms.sort_by(f64::total_cmp);
    all.answer_ms.sort_by(f64::total_cmp);
    all.token_gap_ms.sort_by(f64::total_cmp);
    println!(
        "sessions={sessions} answers={} errors={} answers_per_s={:.1} first_token_p50_ms={:.1} first_token_p99_ms={:.1} \
         answer_p50_ms={:.1} answer_p99_ms={:.1} tokens={} token_gap_p50_ms={:.2} token_gap_p99_ms={:.2}",
        all.answers,
        all.errors,
        all.answers as f64 / elapsed,
        percentile(&all.first_token_ms, 0.5),
        percentile(&all.first_token_ms, 0.99),
        percentile(&all.answer_ms, 0.5),
        percentile(&all.answer_ms, 0.99),
        all.tokens,
        percentile(&all.token_gap_ms, 0.5),
        percentile(&all.token_gap_ms, 0.99),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("fake-llm") => {
            let port = arg(&args, "--port").expect("--port");
            let gap: u64 = arg(&args, "--gap-ms").map_or(20, |g| g.parse().expect("--gap-ms"));
            let fake = careport_tests::llm::FakeLlm::start_on(&format!("127.0.0.1:{port}"));
            fake.set_gap_ms(gap);
            println!("fake LLM at {} ({gap} ms between events)", fake.base_url);
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Some("load") => actix_web::rt::System::new().block_on(load(&args)),
        _ => {
            eprintln!(
                "usage: chat_load fake-llm --port P --gap-ms G | chat_load load --url U --token T --sessions N --seconds S --questions FILE"
            );
            std::process::exit(2);
        }
    }
}
