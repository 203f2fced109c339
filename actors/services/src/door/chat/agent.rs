//! The agent loop: the model answers with the conversation, the system prompt and the tools of
//! the user's role; each tool call runs through [`super::tools`] with the user's own `Caller`;
//! results go back to the model until it answers in text, or the steps or the time run out.
//!
//! Before anything leaves the host, every message and tool result passes through the redaction
//! plugins the operator named (`llm.redact_with`), and the audit trail records that text was
//! sent, on whose behalf and where (never the text). A redaction plugin that is missing or
//! fails means nothing is sent: the answer falls back to quoted passages.
//!
//! The answer is released a sentence at a time: a sentence that presents a diagnosis is held
//! back and replaced, once, by the sentence that says careport cannot tell (see
//! [`crate::chat::safety::presents_diagnosis`]). The model's failures before it said anything
//! fall back to the grounded answer; after, the answer ends with a note. Nothing hangs: every
//! wait is bounded by `llm.timeout_secs` and `chat.answer_timeout_secs`.

use std::time::Duration;

use careport_domain::Role;
use careport_ml::openai::{ChatDelta, ChatMessage, ChatRequest, ToolCall};
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::tools::{self, ToolContext};
use super::{Confirmation, Message, Out};
use crate::Services;
use crate::audit::{EventExt, outcome};
use crate::chat::{ChatEvent, Citation, Provider, ToolStatus, prompt, safety};
use crate::identity::Caller;

/// One answer by the model.
pub(crate) struct Run<'a> {
    pub services: &'a Services,
    pub caller: &'a Caller,
    pub session: Uuid,
    pub language: &'a str,
    pub provider: &'a Provider,
}

/// What an answer by the model came to, beside its text.
pub(crate) struct Done {
    pub citations: Vec<Citation>,
    pub pending: Vec<Confirmation>,
}

/// Why the model did not answer; the answer is made from passages instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Unreachable, failing, too slow, or the audit event could not be written first.
    ProviderFailed,
    /// A redaction plugin is missing or failed: nothing was sent.
    RedactionFailed,
}

impl Fallback {
    /// The chat string that says so.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::ProviderFailed => "chat.provider_failed",
            Self::RedactionFailed => "chat.redaction_failed",
        }
    }
}

impl Run<'_> {
    /// Answer `question` after `history`; see the module doc.
    pub(crate) async fn answer(
        &self,
        history: &[Message],
        question: &str,
        out: &mut Out<'_>,
    ) -> Result<Done, Fallback> {
        let cfg = self.services.chat.config();
        let role = self.caller.role();
        let deadline = Instant::now() + Duration::from_secs(cfg.answer_timeout_secs);
        let mut messages = vec![ChatMessage::system(prompt::system(role, self.language))];
        for m in history {
            let text = self.redact(&m.body.text).await?;
            messages.push(if m.role == "user" { ChatMessage::user(text) } else { ChatMessage::assistant(text) });
        }
        messages.push(ChatMessage::user(self.redact(question).await?));
        let offered = prompt::tools(role);
        let mut ctx = ToolContext::default();
        let mut gate = Gate::default();
        let no_diagnosis = safety::no_diagnosis_message(self.language);
        let said_before = out.text.len();

        for _step in 0..cfg.max_steps {
            let request = ChatRequest {
                messages: messages.clone(),
                tools: offered.clone(),
                temperature: Some(0.2),
                max_tokens: Some(1024),
            };
            self.audit_sending(&request, &ctx).await?;
            let mut stream = self.provider.client.chat_stream(request);
            let mut content = String::new();
            let mut calls: Vec<ToolCall> = Vec::new();
            loop {
                let next = tokio::select! {
                    _ = out.cancel().cancelled() => {
                        out.stopped = true;
                        gate.flush(out, &no_diagnosis).await;
                        return Ok(self.done(ctx, out));
                    }
                    next = tokio::time::timeout_at(deadline, stream.next()) => next,
                };
                match next {
                    Ok(Some(Ok(ChatDelta::Content(piece)))) => {
                        content.push_str(&piece);
                        if !gate.push(&piece, out, &no_diagnosis).await {
                            return Ok(self.done(ctx, out));
                        }
                    }
                    Ok(Some(Ok(ChatDelta::ToolCall(call)))) => calls.push(call),
                    Ok(Some(Ok(ChatDelta::Finished { .. }))) | Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        // The error's kind only: a provider's message may echo what it was sent.
                        tracing::warn!(endpoint = %self.provider.endpoint, error = error_kind(&e), "the language model failed");
                        return self.failed(out, &mut gate, said_before, &no_diagnosis, ctx).await;
                    }
                    Err(_elapsed) => {
                        tracing::warn!(endpoint = %self.provider.endpoint, "the answer took longer than chat.answer_timeout_secs");
                        return self.failed(out, &mut gate, said_before, &no_diagnosis, ctx).await;
                    }
                }
            }
            gate.flush(out, &no_diagnosis).await;
            if calls.is_empty() {
                return Ok(self.done(ctx, out));
            }
            messages.push(ChatMessage::Assistant {
                content: (!content.is_empty()).then_some(content),
                tool_calls: calls.clone(),
            });
            for call in calls {
                if out.cancel().is_cancelled() {
                    out.stopped = true;
                    return Ok(self.done(ctx, out));
                }
                out.event(ChatEvent::Tool { name: call.name.clone(), status: ToolStatus::Running }).await;
                let offered_here = offered.iter().any(|t| t.name == call.name);
                let ran = if offered_here {
                    let limit = Duration::from_secs(cfg.tool_timeout_secs);
                    let run = tools::run(self.services, self.caller, self.session, self.language, &call, &mut ctx, out);
                    match tokio::time::timeout(limit, run).await {
                        Ok(result) => result,
                        Err(_) => {
                            (ToolStatus::Failed, json!({"error": "timeout", "message": "The tool took too long."}))
                        }
                    }
                } else {
                    let message = format!("There is no tool `{}` for this user.", call.name);
                    (ToolStatus::Refused, json!({"error": "unknown_tool", "message": message}))
                };
                let (status, result) = ran;
                let counters = self.services.chat.counters();
                counters.tool_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if status == ToolStatus::Refused {
                    counters.tool_refusals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                out.event(ChatEvent::Tool { name: call.name.clone(), status }).await;
                let text = self.redact(&result.to_string()).await?;
                messages.push(ChatMessage::tool_result(call.id, text));
            }
        }
        // Out of steps: say so rather than end in silence.
        out.paragraph().await;
        let note = self.services.chats().string(self.language, "chat.step_limit", &[]).await;
        out.say(&note).await;
        Ok(self.done(ctx, out))
    }

    /// The model failed: before it said anything, fall back; after, end with a note.
    async fn failed(
        &self,
        out: &mut Out<'_>,
        gate: &mut Gate,
        said_before: usize,
        no_diagnosis: &str,
        ctx: ToolContext,
    ) -> Result<Done, Fallback> {
        gate.flush(out, no_diagnosis).await;
        if out.text.len() == said_before {
            return Err(Fallback::ProviderFailed);
        }
        out.paragraph().await;
        let note = self.services.chats().string(self.language, "chat.provider_failed", &[]).await;
        out.say(&note).await;
        Ok(self.done(ctx, out))
    }

    /// The citations the answer uses (`[n]` in its text; all of them if it marks none).
    fn done(&self, ctx: ToolContext, out: &Out<'_>) -> Done {
        let marked: Vec<Citation> = ctx
            .citations
            .iter()
            .enumerate()
            .filter(|(i, _)| out.text.contains(&format!("[{}]", i + 1)))
            .map(|(_, c)| c.clone())
            .collect();
        let citations = if marked.is_empty() { ctx.citations } else { marked };
        Done { citations, pending: ctx.pending }
    }

    /// Pass `text` through the redaction plugins, in order. Any failure: nothing may be sent.
    async fn redact(&self, text: &str) -> Result<String, Fallback> {
        let mut text = text.to_owned();
        for name in &self.provider.redact_with {
            let input = json!({"text": text, "pages": [], "language": self.language});
            let output = self.services.plugins.call(name, input).await.map_err(|e| {
                tracing::error!(plugin = %name, error = %e, "a redaction plugin failed; nothing is sent to the language model");
                Fallback::RedactionFailed
            })?;
            text = output["text"].as_str().ok_or(Fallback::RedactionFailed)?.to_owned();
        }
        Ok(text)
    }

    /// Record, before it leaves, that text is sent to the provider: on whose behalf, where, how
    /// much (never what). A patient's own conversation goes into their access log.
    async fn audit_sending(&self, request: &ChatRequest, ctx: &ToolContext) -> Result<(), Fallback> {
        let chars: usize = request
            .messages
            .iter()
            .map(|m| match m {
                ChatMessage::System(t) | ChatMessage::User(t) => t.chars().count(),
                ChatMessage::Assistant { content, .. } => content.as_deref().map_or(0, |c| c.chars().count()),
                ChatMessage::Tool { content, .. } => content.chars().count(),
            })
            .sum();
        let detail = format!(
            "sent to {} ({} messages, {chars} characters, redacted by [{}])",
            self.provider.endpoint,
            request.messages.len(),
            self.provider.redact_with.join(", ")
        );
        let mut events = Vec::new();
        let base = self.caller.ctx.event("chat.llm_request", outcome::SUCCESS).resource("chat_session", self.session);
        if self.caller.role() == Role::Patient {
            events.push(base.clone().patient(self.caller.user()).detail(detail.clone()));
        } else {
            events.push(base.clone().detail(detail.clone()));
        }
        // Patients whose data a tool put into the conversation.
        for p in &ctx.patients {
            if self.caller.role() != Role::Patient || *p != self.caller.user() {
                events.push(base.clone().patient(*p).detail(detail.clone()));
            }
        }
        self.services.audit.write(events).await.map_err(|_| Fallback::ProviderFailed)
    }
}

fn error_kind(e: &careport_ml::openai::ProviderError) -> &'static str {
    use careport_ml::openai::ProviderError as P;
    match e {
        P::Unavailable(_) => "unavailable",
        P::RateLimited { .. } => "rate_limited",
        P::BadResponse(_) => "bad_response",
        P::Invalid(_) => "invalid",
        P::Timeout => "timeout",
    }
}

/// Holds the model's text until a sentence is complete, then lets it through unless it
/// presents a diagnosis.
#[derive(Default)]
struct Gate {
    pending: String,
    replaced: bool,
}

impl Gate {
    /// Add a piece; release whole sentences. False once the answer is stopped.
    async fn push(&mut self, piece: &str, out: &mut Out<'_>, no_diagnosis: &str) -> bool {
        self.pending.push_str(piece);
        while let Some(end) = sentence_end(&self.pending) {
            let sentence: String = self.pending.drain(..end).collect();
            if !self.release(&sentence, out, no_diagnosis).await {
                return false;
            }
        }
        true
    }

    /// Release what is left.
    async fn flush(&mut self, out: &mut Out<'_>, no_diagnosis: &str) {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            self.release(&rest, out, no_diagnosis).await;
        }
    }

    async fn release(&mut self, sentence: &str, out: &mut Out<'_>, no_diagnosis: &str) -> bool {
        if safety::presents_diagnosis(sentence) {
            if self.replaced {
                return !out.stopped;
            }
            self.replaced = true;
            // The replacement takes the sentence's place, spaces around it included.
            let lead = &sentence[..sentence.len() - sentence.trim_start().len()];
            let trail = &sentence[sentence.trim_end().len()..];
            return out.say(&format!("{lead}{no_diagnosis}{trail}")).await;
        }
        out.say(sentence).await
    }
}

/// The byte index just past the first complete sentence of `text` (its closing mark and the
/// space after it), if there is one.
fn sentence_end(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '。' | '！' | '？' | '؟' | '।' | '\n' => return Some(i + c.len_utf8()),
            '.' | '!' | '?' | ':' => {
                if let Some(&(j, n)) = chars.peek()
                    && n.is_whitespace()
                {
                    return Some(j + n.len_utf8());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::sentence_end;

    #[test]
    fn a_sentence_ends_at_its_mark_and_the_space_after() {
        assert_eq!(sentence_end("Hello there. Next"), Some(13));
        assert_eq!(sentence_end("Version 2.5 is"), None);
        assert_eq!(sentence_end("放疗。下一句"), Some("放疗。".len()));
        assert_eq!(sentence_end("no end yet"), None);
        assert_eq!(sentence_end("line\nnext"), Some(5));
    }
}
