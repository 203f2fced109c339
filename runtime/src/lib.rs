//! careport's runtime: settings, telemetry, secrets, the HTTP interface and startup, used by
//! the `careport` binary and by the integration tests (which build the very same
//! [`startup::Application`]).
//!
//! # Threads
//! `careport serve` runs one actix System: the actors on its arbiter, HTTP on
//! `http.workers` worker threads, blocking work (password hashing, OCR) on dedicated pools.

pub mod cli;
pub mod http;
pub mod i18n;
pub mod metrics;
pub mod ml;
pub mod secrets;
pub mod seed;
pub mod seed_charts;
pub mod settings;
pub mod startup;
pub mod telemetry;
pub mod vault_cli;

pub use settings::Settings;
pub use startup::Application;
