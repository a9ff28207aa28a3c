//! JSON logs on stdout (tracing). Events carry request ids where there is a request;
//! nothing logs secrets, bodies or personal information.
//!
//! With tracing on ([`crate::telemetry`]), the OpenTelemetry layer is installed beside
//! the JSON layer, and every line logged inside a span also carries that span's
//! `trace_id` and `span_id` (W3C hex), so a log line leads to its trace. Without it the
//! subscriber is exactly the plain JSON one: no layer, no look-up per line.

use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::telemetry::Telemetry;

/// Installs the JSON subscriber with `filter` (tracing's directive syntax), and the
/// OpenTelemetry layer when `telemetry` runs. The PostgreSQL driver's server notices
/// ("relation already exists, skipping") are kept to warnings unless the filter names
/// the driver itself.
pub fn init(filter: &str, telemetry: Option<&Telemetry>) -> Result<(), String> {
    let filter = env_filter(filter)?;
    match telemetry {
        None => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stdout)
            .try_init()
            .map_err(|e| e.to_string()),
        Some(telemetry) => init_traced(filter, telemetry),
    }
}

fn env_filter(filter: &str) -> Result<EnvFilter, String> {
    let mut filter = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    if !filter.to_string().contains("tokio_postgres") {
        filter = filter.add_directive("tokio_postgres=warn".parse().map_err(|e| format!("{e}"))?);
    }
    Ok(filter)
}

/// Targets whose spans are traced whatever the log filter says (the request, batch and
/// flush spans), so `--log warn` does not switch tracing off.
fn traced_span(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span()
        && *metadata.level() <= tracing::Level::INFO
        && (metadata.target().starts_with("gateway") || metadata.target().starts_with("pool"))
}

/// The JSON layer's filter passes events only (it never prints spans, so formatting
/// their fields would be wasted work); the OpenTelemetry layer's passes the traced spans.
fn init_traced(filter: EnvFilter, telemetry: &Telemetry) -> Result<(), String> {
    use tracing_subscriber::filter::FilterExt;
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .event_format(TraceIdJson::new())
        .with_writer(std::io::stdout)
        .with_filter(filter.and(tracing_subscriber::filter::filter_fn(|m| m.is_event())));
    let otel = crate::telemetry::layer(telemetry)
        .with_filter(tracing_subscriber::filter::filter_fn(traced_span));
    tracing_subscriber::registry().with(json).with(otel).try_init().map_err(|e| e.to_string())
}

/// The JSON format, plus `trace_id` and `span_id` of the current span when it is traced.
struct TraceIdJson {
    inner: Format<Json>,
}

impl TraceIdJson {
    fn new() -> Self {
        let inner =
            tracing_subscriber::fmt::format().json().with_current_span(false).with_span_list(false);
        Self { inner }
    }
}

impl<S> FormatEvent<S, JsonFields> for TraceIdJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(256);
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        // The dispatcher's current span, not the JSON layer's view of it: that layer's
        // filter passes no span, so its own context never has one.
        let span_id = event.parent().cloned().or_else(|| {
            tracing::dispatcher::get_default(|dispatch| dispatch.current_span().id().cloned())
        });
        let ids = span_id.and_then(|id| trace_ids(&id));
        match (ids, line.strip_suffix("}\n")) {
            (Some((trace_id, span_id)), Some(object)) => {
                writeln!(writer, "{object},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// The trace and span id of a traced span, as W3C lower-case hex.
fn trace_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(id, dispatch)
    })?;
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}
