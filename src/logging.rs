//! Logging: `tracing` with the level from `LOG_LEVEL`, text or JSON lines (`LOG_FORMAT`) on
//! stderr.

use anyhow::Context;

use raccoon_config::LogFormat;

/// Installs the global subscriber.
pub(crate) fn init(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).with_context(|| format!("invalid LOG_LEVEL {level:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        // Colours only for a person at a terminal; log files and collectors get plain text.
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
