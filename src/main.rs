//! The draftwatch binary: parses arguments, sets up logging and hands over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use draftwatch::cli::{Cli, Command, LogFormat, execute};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints notifications to the terminal; info logs would bury them.
    let default_filter = if matches!(cli.command, Command::Demo(_)) { "warn" } else { "info" };
    init_tracing(cli.log_format, default_filter);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(execute(cli))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colors = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colors);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
