//! careport's own chat vocabulary (messages, tools, tool calls, replies, stream deltas), so
//! that callers never see async-openai's types, and its translation to and from the wire.
//!
//! A streamed answer sends a tool call in pieces: the first piece of each call carries its
//! `index`, `id` and name, later pieces only the `index` and a fragment of the JSON
//! arguments. `ToolCallAssembler` joins them by index.

use std::collections::BTreeMap;

use async_openai::types::chat::{
    ChatChoiceStream, ChatCompletionMessageToolCall, ChatCompletionMessageToolCallChunk,
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage,
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage, ChatCompletionRequestUserMessageContent,
    ChatCompletionStreamOptions, ChatCompletionTool, ChatCompletionTools, CompletionUsage, CreateChatCompletionRequest,
    CreateChatCompletionResponse, FunctionCall, FunctionObject,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ProviderError;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    /// Instructions from careport (the system prompt).
    System(String),
    /// What the patient or clinician wrote.
    User(String),
    /// An earlier answer of the model: text, tool calls, or both.
    Assistant { content: Option<String>, tool_calls: Vec<ToolCall> },
    /// The result of running one tool call, sent back to the model.
    Tool {
        /// The [`ToolCall::id`] this answers.
        tool_call_id: String,
        content: String,
    },
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self::System(content.into())
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::User(content.into())
    }

    /// A plain text answer of the model.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::Assistant { content: Some(content.into()), tool_calls: Vec::new() }
    }

    /// The result of the tool call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self::Tool { tool_call_id: tool_call_id.into(), content: content.into() }
    }

    /// The role name on the wire: `system`, `user`, `assistant` or `tool`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::System(_) => "system",
            Self::User(_) => "user",
            Self::Assistant { .. } => "assistant",
            Self::Tool { .. } => "tool",
        }
    }
}

/// A tool the model may call: a name, what it does, and its arguments as a JSON schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// `a-z`, `A-Z`, `0-9`, `_` and `-`, at most 64 characters.
    pub name: String,
    pub description: String,
    /// A JSON schema object, e.g. `{"type":"object","properties":{…},"required":[…]}`.
    pub parameters: serde_json::Value,
}

/// A call of a tool requested by the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// Chosen by the server; the [`ChatMessage::Tool`] answering this call repeats it.
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them: JSON text, not yet checked.
    pub arguments: String,
}

impl ToolCall {
    /// Decode the arguments into `T`. The error names the tool, not the arguments.
    pub fn parse_arguments<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_str(&self.arguments).map_err(|e| {
            ProviderError::BadResponse(format!(
                "the arguments of tool `{}` do not decode ({})",
                self.name,
                super::error::describe_json_error(&e)
            ))
        })
    }
}

/// A request for one answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call; empty for none.
    pub tools: Vec<ToolDefinition>,
    /// Sampling temperature (0–2); unset: the server's default.
    pub temperature: Option<f32>,
    /// Most tokens to generate (sent as `max_completion_tokens`); unset: the server's limit.
    pub max_tokens: Option<u32>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self { messages, ..Self::default() }
    }

    pub fn with_tools(mut self, tools: Vec<ToolDefinition>) -> Self {
        self.tools = tools;
        self
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit was reached: the answer is cut.
    Length,
    /// The model wants tool results before it goes on.
    ToolCalls,
    /// The provider's content filter removed (part of) the answer.
    ContentFilter,
}

/// Tokens used by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

/// A complete answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The answer text, if any (a reply with tool calls often has none).
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<Usage>,
}

impl ChatReply {
    /// This reply as the assistant message to append to the conversation before the tool
    /// results.
    pub fn to_message(&self) -> ChatMessage {
        ChatMessage::Assistant { content: self.content.clone(), tool_calls: self.tool_calls.clone() }
    }
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatDelta {
    /// The next piece of answer text.
    Content(String),
    /// A tool call, complete (its argument fragments joined).
    ToolCall(ToolCall),
    /// The last item: why the model stopped, and the usage when the server reports it.
    Finished { finish_reason: Option<FinishReason>, usage: Option<Usage> },
}

/// Check a request and translate it to async-openai's type.
pub(crate) fn to_wire(
    req: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<CreateChatCompletionRequest, ProviderError> {
    if req.messages.is_empty() {
        return Err(ProviderError::Invalid("a chat request needs messages".into()));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.push(message_to_wire(m)?);
    }
    let mut tools = Vec::with_capacity(req.tools.len());
    for t in &req.tools {
        let valid_name = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(ProviderError::Invalid(format!(
                "tool name `{}` must be 1 to 64 of a-z, A-Z, 0-9, _ and -",
                t.name
            )));
        }
        if !t.parameters.is_object() {
            return Err(ProviderError::Invalid(format!(
                "the parameters of tool `{}` must be a JSON schema object",
                t.name
            )));
        }
        tools.push(ChatCompletionTools::Function(ChatCompletionTool {
            function: FunctionObject {
                name: t.name.clone(),
                description: Some(t.description.clone()).filter(|d| !d.is_empty()),
                parameters: Some(t.parameters.clone()),
                strict: None,
            },
        }));
    }
    Ok(CreateChatCompletionRequest {
        messages,
        model: model.to_owned(),
        temperature: req.temperature,
        max_completion_tokens: req.max_tokens,
        tools: Some(tools).filter(|t| !t.is_empty()),
        stream: stream.then_some(true),
        stream_options: stream.then_some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            ..ChatCompletionStreamOptions::default()
        }),
        ..CreateChatCompletionRequest::default()
    })
}

fn message_to_wire(m: &ChatMessage) -> Result<ChatCompletionRequestMessage, ProviderError> {
    Ok(match m {
        ChatMessage::System(text) => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(text.clone()),
            name: None,
        }),
        ChatMessage::User(text) => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(text.clone()),
            name: None,
        }),
        ChatMessage::Assistant { content, tool_calls } => {
            if content.is_none() && tool_calls.is_empty() {
                return Err(ProviderError::Invalid("an assistant message needs content or tool calls".into()));
            }
            let calls = tool_calls
                .iter()
                .map(|c| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: c.id.clone(),
                        function: FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
                    })
                })
                .collect::<Vec<_>>();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: content.clone().map(ChatCompletionRequestAssistantMessageContent::Text),
                tool_calls: Some(calls).filter(|c| !c.is_empty()),
                ..ChatCompletionRequestAssistantMessage::default()
            })
        }
        ChatMessage::Tool { tool_call_id, content } => {
            if tool_call_id.is_empty() {
                return Err(ProviderError::Invalid("a tool message needs the id of the call it answers".into()));
            }
            ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
                content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
                tool_call_id: tool_call_id.clone(),
            })
        }
    })
}

/// Decode a JSON value into an async-openai type; the error quotes no values.
pub(crate) fn decode<T: DeserializeOwned>(value: serde_json::Value, what: &str) -> Result<T, ProviderError> {
    serde_json::from_value(value).map_err(|e| {
        ProviderError::BadResponse(format!(
            "{what} does not follow the OpenAI format ({})",
            super::error::describe_json_error(&e)
        ))
    })
}

/// Translate a complete answer; only the first choice counts (careport never asks for more).
pub(crate) fn reply_from_wire(resp: CreateChatCompletionResponse) -> Result<ChatReply, ProviderError> {
    let usage = resp.usage.map(usage_from_wire);
    let choice = resp
        .choices
        .into_iter()
        .min_by_key(|c| c.index)
        .ok_or_else(|| ProviderError::BadResponse("the answer has no choices".into()))?;
    let message = choice.message;
    let mut tool_calls = Vec::new();
    for call in message.tool_calls.unwrap_or_default() {
        match call {
            ChatCompletionMessageToolCalls::Function(f) => {
                tool_calls.push(ToolCall { id: f.id, name: f.function.name, arguments: f.function.arguments })
            }
            ChatCompletionMessageToolCalls::Custom(_) => {
                return Err(ProviderError::BadResponse(
                    "the model called a custom tool; careport defines only functions".into(),
                ));
            }
        }
    }
    Ok(ChatReply {
        content: message.content.or(message.refusal),
        tool_calls,
        finish_reason: choice.finish_reason.map(finish_from_wire),
        usage,
    })
}

pub(crate) fn usage_from_wire(u: CompletionUsage) -> Usage {
    Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens }
}

pub(crate) fn finish_from_wire(f: async_openai::types::chat::FinishReason) -> FinishReason {
    use async_openai::types::chat::FinishReason as Wire;
    match f {
        Wire::Stop => FinishReason::Stop,
        Wire::Length => FinishReason::Length,
        Wire::ToolCalls | Wire::FunctionCall => FinishReason::ToolCalls,
        Wire::ContentFilter => FinishReason::ContentFilter,
    }
}

/// Joins streamed tool-call pieces by their `index`.
#[derive(Debug, Default)]
pub(crate) struct ToolCallAssembler {
    calls: BTreeMap<u32, PartialCall>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl ToolCallAssembler {
    pub fn push(&mut self, chunk: ChatCompletionMessageToolCallChunk) {
        let call = self.calls.entry(chunk.index).or_default();
        if let Some(id) = chunk.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = chunk.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty()) {
                call.name = name;
            }
            if let Some(fragment) = function.arguments {
                call.arguments.push_str(&fragment);
            }
        }
    }

    /// The assembled calls in index order; a call that never got an id or a name means the
    /// stream was malformed.
    pub fn finish(&mut self) -> Result<Vec<ToolCall>, ProviderError> {
        let calls = std::mem::take(&mut self.calls);
        calls
            .into_iter()
            .map(|(index, c)| {
                if c.id.is_empty() || c.name.is_empty() {
                    return Err(ProviderError::BadResponse(format!("streamed tool call {index} has no id or no name")));
                }
                Ok(ToolCall { id: c.id, name: c.name, arguments: c.arguments })
            })
            .collect()
    }
}

/// What one streamed choice adds: text, tool-call pieces (into the assembler), maybe the
/// finish reason.
pub(crate) fn absorb_choice(
    choice: ChatChoiceStream,
    assembler: &mut ToolCallAssembler,
    out: &mut Vec<ChatDelta>,
) -> Option<FinishReason> {
    let delta = choice.delta;
    if let Some(text) = delta.content.or(delta.refusal).filter(|t| !t.is_empty()) {
        out.push(ChatDelta::Content(text));
    }
    for piece in delta.tool_calls.unwrap_or_default() {
        assembler.push(piece);
    }
    choice.finish_reason.map(finish_from_wire)
}

/// Serialize a wire request for async-openai's `*_byot` calls.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, ProviderError> {
    serde_json::to_value(value).map_err(|e| ProviderError::Invalid(format!("the request does not serialize: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_openai::types::chat::FunctionCallStream;

    fn piece(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ChatCompletionMessageToolCallChunk {
        ChatCompletionMessageToolCallChunk {
            index,
            id: id.map(str::to_owned),
            r#type: None,
            function: Some(FunctionCallStream { name: name.map(str::to_owned), arguments: Some(args.to_owned()) }),
        }
    }

    #[test]
    fn tool_call_pieces_join_by_index() {
        let mut a = ToolCallAssembler::default();
        a.push(piece(1, Some("call_b"), Some("my_records"), ""));
        a.push(piece(0, Some("call_a"), Some("search"), "{\"q\":"));
        a.push(piece(1, None, None, "{}"));
        a.push(piece(0, None, None, "\"x\"}"));
        let calls = a.finish().expect("complete calls");
        assert_eq!(
            calls,
            vec![
                ToolCall { id: "call_a".into(), name: "search".into(), arguments: "{\"q\":\"x\"}".into() },
                ToolCall { id: "call_b".into(), name: "my_records".into(), arguments: "{}".into() },
            ]
        );
        assert_eq!(a.finish().expect("nothing left"), Vec::new());
    }

    #[test]
    fn a_tool_call_without_a_name_is_a_bad_response() {
        let mut a = ToolCallAssembler::default();
        a.push(piece(0, Some("call_a"), None, "{}"));
        assert!(matches!(a.finish(), Err(ProviderError::BadResponse(_))));
    }

    #[test]
    fn requests_are_checked() {
        assert!(to_wire(&ChatRequest::default(), "m", false).is_err());
        let bad_tool = ChatRequest::new(vec![ChatMessage::user("hi")]).with_tools(vec![ToolDefinition {
            name: "has space".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }]);
        assert!(matches!(to_wire(&bad_tool, "m", false), Err(ProviderError::Invalid(_))));
        let wire = to_wire(&ChatRequest::new(vec![ChatMessage::user("hi")]), "m", true).expect("valid request");
        let json = serde_json::to_value(&wire).expect("serializes");
        assert_eq!(json["stream"], true);
        assert_eq!(json["stream_options"]["include_usage"], true);
        assert_eq!(json["messages"][0]["role"], "user");
        assert!(json.get("tools").is_none());
    }
}
