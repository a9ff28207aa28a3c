//! JSON logs on stdout (tracing). Events carry request ids where there is a request;
//! nothing logs secrets, bodies or personal information.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber with `filter` (tracing's directive syntax). The
/// PostgreSQL driver's server notices ("relation already exists, skipping") are kept to
/// warnings unless the filter names the driver itself.
pub fn init(filter: &str) -> Result<(), String> {
    let mut filter = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    if !filter.to_string().contains("tokio_postgres") {
        filter = filter.add_directive("tokio_postgres=warn".parse().map_err(|e| format!("{e}"))?);
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout)
        .try_init()
        .map_err(|e| e.to_string())
}
