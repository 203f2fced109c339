//! The one error type that crosses crate boundaries, and the table of stable error codes.
//!
//! A code is what API clients match on (`"code": "job_not_found"`); its kind decides the HTTP
//! status (in `runtime`); its default message is safe to show to anyone. Internal detail goes
//! into `source`, which is logged server-side and never sent to a client.

use std::fmt;

/// What sort of failure a [`Code`] is; `runtime` maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a value is invalid (400).
    BadRequest,
    /// No valid credentials were presented (401).
    Unauthenticated,
    /// The caller is known but may not do this; used only where existence is no secret (403).
    Forbidden,
    /// The resource does not exist, or the caller may not know that it does (404).
    NotFound,
    /// The method is not allowed on this resource (405).
    MethodNotAllowed,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The request is well-formed but breaks a rule (a weak password) (422).
    Unprocessable,
    /// The body is larger than allowed (413).
    PayloadTooLarge,
    /// The media type is not accepted (415).
    UnsupportedMediaType,
    /// The requested byte range lies outside the content (416).
    RangeNotSatisfiable,
    /// The resource existed and is gone for good (410).
    Gone,
    /// The caller sent too many requests (429).
    TooManyRequests,
    /// A dependency (store, cache, model) is down or saturated: retry later (503).
    Unavailable,
    /// The request took longer than allowed (504).
    Timeout,
    /// A bug or an unexpected failure; details are logged, never returned (500).
    Internal,
}

macro_rules! error_codes {
    ($($variant:ident => $kind:ident, $code:literal, $message:literal;)*) => {
        /// Stable, machine-readable error codes. One line per code: name, kind, wire name,
        /// and a default message that carries no internal or personal detail.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, for documentation and for tests that check the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The kind of failure, which decides the HTTP status.
            pub fn kind(self) -> ErrorKind {
                match self { $(Code::$variant => ErrorKind::$kind,)* }
            }

            /// The wire name clients match on.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// A message safe to show to any caller.
            pub fn default_message(self) -> &'static str {
                match self { $(Code::$variant => $message,)* }
            }
        }
    };
}

error_codes! {
    BadRequest => BadRequest, "bad_request", "The request is malformed.";
    InvalidJson => BadRequest, "invalid_json", "The request body is not valid JSON for this endpoint.";
    InvalidQuery => BadRequest, "invalid_query", "The query string is not valid for this endpoint.";
    InvalidPath => BadRequest, "invalid_path", "A path parameter is not valid.";
    InvalidValue => BadRequest, "invalid_value", "A value in the request is not valid.";
    Unauthenticated => Unauthenticated, "unauthenticated", "Authentication is required.";
    InvalidCredentials => Unauthenticated, "invalid_credentials", "The e-mail address or password is wrong.";
    TokenMalformed => Unauthenticated, "token_malformed", "The access token is malformed.";
    TokenInvalid => Unauthenticated, "token_invalid", "The access token's signature is not valid.";
    TokenExpired => Unauthenticated, "token_expired", "The access token has expired; refresh it.";
    TokenRevoked => Unauthenticated, "token_revoked", "The session of this token has ended; log in again.";
    RefreshTokenInvalid => Unauthenticated, "refresh_token_invalid", "The refresh token is not valid; log in again.";
    RefreshTokenReused => Unauthenticated, "refresh_token_reused", "This refresh token was already used; the whole session has been revoked.";
    SessionExpired => Unauthenticated, "session_expired", "The session was idle too long; log in again.";
    MfaRequired => Unauthenticated, "mfa_required", "A one-time code from the authenticator app (or a recovery code) is required.";
    MfaCodeInvalid => Unauthenticated, "mfa_code_invalid", "The one-time code is wrong, expired or already used.";
    Forbidden => Forbidden, "forbidden", "You may not do this.";
    CsrfRejected => Forbidden, "csrf_rejected", "The CSRF token is missing or wrong for this cookie-authenticated request.";
    EmailNotVerified => Forbidden, "email_not_verified", "Verify your e-mail address first; we sent you a link.";
    AccountInactive => Forbidden, "account_inactive", "This account has been deactivated.";
    MfaEnrolmentRequired => Forbidden, "mfa_enrolment_required", "Your role requires MFA: enrol an authenticator app first.";
    LinkInvalid => BadRequest, "link_invalid", "This link is invalid, expired or already used.";
    PasswordTooShort => Unprocessable, "password_too_short", "The password is too short.";
    PasswordTooLong => Unprocessable, "password_too_long", "The password is too long.";
    PasswordTooCommon => Unprocessable, "password_too_common", "The password is one of the most common passwords; choose another.";
    PasswordContainsEmail => Unprocessable, "password_contains_email", "The password must not contain your e-mail address.";
    CurrentPasswordIncorrect => Unprocessable, "current_password_incorrect", "The current password is wrong.";
    MfaAlreadyEnabled => Conflict, "mfa_already_enabled", "MFA is already enabled on this account.";
    MfaNotEnabled => Conflict, "mfa_not_enabled", "MFA is not enabled on this account.";
    NotFound => NotFound, "not_found", "The resource was not found.";
    RouteNotFound => NotFound, "route_not_found", "No such route.";
    MethodNotAllowed => MethodNotAllowed, "method_not_allowed", "This method is not allowed on this route.";
    Conflict => Conflict, "conflict", "The request conflicts with the current state.";
    EmailTaken => Conflict, "email_taken", "An account with this e-mail address already exists.";
    MrnTaken => Conflict, "mrn_taken", "Another patient has this medical record number.";
    SlotTaken => Conflict, "slot_taken", "That time has just been booked; choose another slot.";
    ClinicianUnavailable => Conflict, "clinician_unavailable", "The clinician is away at that time.";
    AppointmentNotScheduled => Conflict, "appointment_not_scheduled", "The appointment is no longer scheduled.";
    OutsideWorkingHours => Unprocessable, "outside_working_hours", "That time is not one of the clinician's slots.";
    InThePast => Unprocessable, "in_the_past", "That time is in the past.";
    HoursOverlap => Unprocessable, "hours_overlap", "Working hours overlap.";
    SubtypeRequired => Unprocessable, "subtype_required", "Assignments name a cancer subtype, not a top-level type.";
    ReasonRequired => Unprocessable, "reason_required", "Emergency access for an administrator needs a reason.";
    PatientNotDeleted => Conflict, "patient_not_deleted", "Erasing a patient needs the record to be deleted first.";
    Erased => Gone, "erased", "This file was erased with its patient's keys and can no longer be read.";
    RangeNotSatisfiable => RangeNotSatisfiable, "range_not_satisfiable", "The requested range is outside the file.";
    IntegrityError => Internal, "integrity_error", "The stored file failed its integrity check; nothing of it was sent. The event was recorded.";
    PluginRefused => Unprocessable, "plugin_refused", "The plugin was refused; the message says why. The installed version, if any, keeps serving.";
    PayloadTooLarge => PayloadTooLarge, "payload_too_large", "The request body is too large.";
    UnsupportedMediaType => UnsupportedMediaType, "unsupported_media_type", "The content type is not supported.";
    TooManyRequests => TooManyRequests, "too_many_requests", "Too many requests; retry later.";
    TooManyAttempts => TooManyRequests, "too_many_attempts", "Too many failed attempts; wait before trying again.";
    AuditUnavailable => Unavailable, "audit_unavailable", "The audit trail cannot be written; the request was refused.";
    StoreUnavailable => Unavailable, "store_unavailable", "The data store is unavailable; retry later.";
    ServiceUnavailable => Unavailable, "service_unavailable", "The service is temporarily unavailable; retry later.";
    ModelUnavailable => Unavailable, "model_unavailable", "The embedding model is unavailable; an operator must install or fix it.";
    ModelDisabled => Unavailable, "model_disabled", "Embeddings are turned off on this server.";
    ModelOverloaded => Unavailable, "model_overloaded", "The embedding model is busy; retry shortly.";
    ModelFailed => Unavailable, "model_failed", "The embedding provider failed; retry later.";
    OcrUnsupported => Unprocessable, "ocr_unsupported", "OCR reads PDFs and PNG, JPEG or TIFF images; this record's file is another kind.";
    OcrLanguageUnavailable => Unavailable, "ocr_language_unavailable", "The OCR language pack for this language is not installed on this server; an operator must install it.";
    OcrOverloaded => Unavailable, "ocr_overloaded", "The OCR queue is full; retry later.";
    TextNotReady => NotFound, "text_not_ready", "This record has no text yet: ask for it with POST /api/v1/records/{id}/ocr, or wait for its job.";
    JobFinished => Conflict, "job_finished", "The job has already ended.";
    JobActive => Conflict, "job_active", "The job is still queued or running; cancel it first or wait for it.";
    TooManyAppointments => Conflict, "too_many_appointments", "You hold as many upcoming appointments as one patient may book; cancel one first or ask the clinic.";
    BillClosed => Conflict, "bill_closed", "The bill item is already paid or cancelled; it cannot change again.";
    ReportFinal => Conflict, "report_final", "The report is signed and cannot be changed; amend it instead.";
    ReportNotFinal => Conflict, "report_not_final", "Only a signed report can be amended or exported.";
    AmendmentPending => Conflict, "amendment_pending", "This report already has an amendment being written; finish or change that one.";
    SecondReaderRequired => Conflict, "second_reader_required", "This clinic has reports signed by a second reader: a doctor other than the author must sign it.";
    TransitionNotAllowed => Conflict, "transition_not_allowed", "The study cannot move to that state from where it stands.";
    PatientMismatch => Conflict, "patient_mismatch", "The file's patient identifiers do not match this chart; nothing was kept. Check the file, or ask an administrator to override.";
    PreviewNotReady => NotFound, "preview_not_ready", "The preview is still being made; try again in a moment.";
    NoPreview => NotFound, "no_preview", "This record has no preview; download the file to view it.";
    ChatBusy => Conflict, "chat_busy", "This conversation is still answering the previous message; wait for it or stop it.";
    KnowledgeUnreadable => Unprocessable, "knowledge_unreadable", "The document could not be read as text (plain text, Markdown, HTML or a PDF with a text layer); nothing was kept.";
    ShuttingDown => Unavailable, "shutting_down", "The server is shutting down; retry on another node.";
    RequestTimeout => Timeout, "request_timeout", "The request took too long.";
    Internal => Internal, "internal", "An internal error occurred.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// careport's error: a [`Code`], a message for the caller, and an optional internal cause.
///
/// The message must be safe to return: no SQL, no file paths, no personal data. The cause is
/// logged with its chain where the error is turned into a response.
pub struct Error {
    code: Code,
    message: String,
    retry_after: Option<u32>,
    source: Option<anyhow::Error>,
}

/// Result with careport's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with the code's default message.
    pub fn new(code: Code) -> Self {
        Self { code, message: code.default_message().to_owned(), retry_after: None, source: None }
    }

    /// An error with a message of its own. The message is returned to the caller as is.
    pub fn with_message(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None, source: None }
    }

    /// An unexpected failure: the caller sees only "An internal error occurred.".
    #[track_caller]
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::Internal).caused_by(source)
    }

    /// The data store failed (a lost connection, a timeout, a pool exhausted): 503
    /// `store_unavailable`, retry in a second. The one mapping of a store failure, for every
    /// crate; the cause is logged, never returned.
    #[track_caller]
    pub fn store(source: impl Into<anyhow::Error>) -> Self {
        Self::new(Code::StoreUnavailable).caused_by(source).retry_after(1)
    }

    /// Attach the internal cause (logged, never returned).
    pub fn caused_by(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Tell the caller when to retry (seconds), for 429 and 503.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn retry_after_seconds(&self) -> Option<u32> {
        self.retry_after
    }

    /// The internal cause, for logging.
    pub fn cause(&self) -> Option<&anyhow::Error> {
        self.source.as_ref()
    }
}

impl fmt::Debug for Error {
    /// Prints the code, the message and the whole cause chain, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(source) = &self.source {
            write!(f, "; caused by: {source:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn wire_names_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
            assert!(code.default_message().ends_with('.'), "{name}");
        }
    }

    #[test]
    fn internal_errors_hide_their_cause_from_display() {
        let err = Error::internal(anyhow::anyhow!("connection to 10.0.0.1 refused"));
        assert_eq!(err.to_string(), "An internal error occurred.");
        assert!(format!("{err:?}").contains("10.0.0.1"));
    }
}
