//! Tracing: one subscriber per process, pretty for people or JSON for collectors.
//!
//! What must never reach a log: query strings, bodies, tokens, keys, personal data. The HTTP
//! root span (see `http::middleware`) records the route *pattern*, not the path.

use tracing::Subscriber;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry, fmt};

use crate::settings::{LogFormat, LogSettings};

/// Build the subscriber: `RUST_LOG` overrides the configured level.
pub fn subscriber<W>(settings: &LogSettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = Registry::default().with(filter);
    match settings.format {
        LogFormat::Json => {
            Box::new(registry.with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(sink)))
        }
        LogFormat::Pretty => Box::new(registry.with(fmt::layer().with_target(true).with_writer(sink))),
    }
}

/// Install the subscriber for the whole process. Call once.
pub fn init(settings: &LogSettings) {
    let sub = subscriber(settings, std::io::stderr);
    if tracing::subscriber::set_global_default(sub).is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}
