//! Tracing: one subscriber per process, pretty for people or JSON for collectors.
//!
//! What must never reach a log: query strings, bodies, tokens, keys, personal data. The HTTP
//! root span (see `http::middleware`) records the route *pattern*, not the path.
//!
//! A serving node stamps every line with its name and version (`node`, `version`: JSON fields,
//! or a prefix in the pretty format), so that the logs of several nodes can be merged and still
//! say who wrote what.

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry, fmt};

use crate::settings::{LogFormat, LogSettings};

/// Build the subscriber: `RUST_LOG` overrides the configured level.
pub fn subscriber<W>(settings: &LogSettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_for(settings, sink, None)
}

/// The subscriber of a node: every line names `node` and `version`.
pub fn node_subscriber<W>(
    settings: &LogSettings,
    sink: W,
    node: &str,
    version: &str,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    subscriber_for(settings, sink, Some(Stamp::new(node, version)))
}

fn subscriber_for<W>(settings: &LogSettings, sink: W, stamp: Option<Stamp>) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = Registry::default().with(filter);
    match (settings.format, stamp) {
        (LogFormat::Json, None) => {
            Box::new(registry.with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(sink)))
        }
        (LogFormat::Json, Some(stamp)) => {
            let inner = fmt::format().json().with_current_span(true).with_span_list(false);
            let layer = fmt::layer().json().event_format(Stamped { inner, stamp, json: true }).with_writer(sink);
            Box::new(registry.with(layer))
        }
        (LogFormat::Pretty, None) => Box::new(registry.with(fmt::layer().with_target(true).with_writer(sink))),
        (LogFormat::Pretty, Some(stamp)) => {
            let inner = fmt::format().with_target(true);
            Box::new(registry.with(fmt::layer().event_format(Stamped { inner, stamp, json: false }).with_writer(sink)))
        }
    }
}

/// Install the subscriber for the whole process. Call once.
pub fn init(settings: &LogSettings) {
    install(subscriber(settings, std::io::stderr));
}

/// Install a node's subscriber (`careport serve`). Call once.
pub fn init_node(settings: &LogSettings, node: &str, version: &str) {
    install(node_subscriber(settings, std::io::stderr, node, version));
}

fn install(sub: Box<dyn Subscriber + Send + Sync>) {
    if tracing::subscriber::set_global_default(sub).is_err() {
        tracing::debug!("a tracing subscriber was already installed");
    }
}

/// The node's name and version, written once as they go into each line.
struct Stamp {
    json: String,
    pretty: String,
}

impl Stamp {
    fn new(node: &str, version: &str) -> Self {
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"?\"".to_owned());
        Self {
            json: format!("\"node\":{},\"version\":{},", quote(node), quote(version)),
            pretty: format!("[{node} {version}] "),
        }
    }
}

/// A formatter that writes the line with `inner`, then puts the stamp in it: as the first
/// fields of the JSON object, or before the pretty line.
struct Stamped<F> {
    inner: F,
    stamp: Stamp,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for Stamped<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        if self.json
            && let Some(rest) = line.strip_prefix('{')
        {
            writer.write_char('{')?;
            writer.write_str(&self.stamp.json)?;
            return writer.write_str(rest);
        }
        if !self.json {
            writer.write_str(&self.stamp.pretty)?;
        }
        writer.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> fmt::MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    fn lines(format: LogFormat) -> String {
        let sink = Sink::default();
        let settings = LogSettings { level: "info".into(), format };
        let sub = node_subscriber(&settings, sink.clone(), "node-\"b\"", "9.9.9");
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("request", route = "/x");
            let _g = span.enter();
            tracing::info!(answer = 42, "first");
            tracing::warn!("second");
        });
        String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8")
    }

    #[test]
    fn every_json_line_names_the_node_and_version_and_stays_json() {
        let out = lines(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for line in lines {
            let v: serde_json::Value = serde_json::from_str(line).expect("each line is one JSON object");
            assert_eq!(v["node"], "node-\"b\"", "{line}");
            assert_eq!(v["version"], "9.9.9", "{line}");
            assert!(v["fields"]["message"].is_string(), "{line}");
            assert_eq!(v["span"]["route"], "/x", "{line}");
        }
    }

    #[test]
    fn every_pretty_line_starts_with_the_node_and_version() {
        let out = lines(LogFormat::Pretty);
        assert_eq!(out.lines().count(), 2, "{out}");
        for line in out.lines() {
            assert!(line.starts_with("[node-\"b\" 9.9.9] "), "{line}");
        }
    }
}
