//! The draftwatch binary: parses arguments, sets up logging and hands over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use draftwatch::cli::{Cli, Command, LogFormat, execute};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    // The demo prints notifications to the terminal; info logs would bury them.
    let default_filter = if matches!(cli.command, Command::Demo(_)) { "warn" } else { "info" };
    init_tracing(cli.log_format, default_filter);

    // One thread: a sweep waits on the network nearly all the time, and worker threads
    // waking each other cost about as much CPU as reading the pages (docs/benchmarks.md).
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(execute(cli))
}

/// Reports a command line that clap rejected. Help and version go to stdout as usual. An
/// error becomes one JSON log line when `--log-format json` was requested, so that a log
/// pipeline that parses JSON receives it too.
fn usage_error(error: clap::Error) -> ExitCode {
    if !error.use_stderr() || !json_requested() {
        error.exit();
    }
    init_tracing(LogFormat::Json, "info");
    let rendered = error.render().to_string();
    let message = rendered.lines().next().unwrap_or("invalid command line").trim_start_matches("error: ");
    tracing::error!("invalid command line: {message}; run `draftwatch --help` for the usage");
    ExitCode::from(2)
}

/// Returns whether the raw arguments ask for JSON logs, for errors found before parsing ends.
fn json_requested() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().enumerate().any(|(index, arg)| {
        arg == "--log-format=json" || (arg == "--log-format" && args.get(index + 1).is_some_and(|next| next == "json"))
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `default_filter`).
fn init_tracing(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let colors = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colors);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            builder.json().flatten_event(true).init();
            std::panic::set_hook(Box::new(|panic| tracing::error!("draftwatch crashed: {panic}")));
        }
    }
}
