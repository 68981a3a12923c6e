//! The command line: argument definitions, command dispatch and exit codes.
//!
//! Exit codes are deliberate: 0 success, 1 a runtime failure, 2 an invalid configuration
//! or usage. Every non-zero exit ends with one log line at error level that states what
//! failed and what to do. Logging is set up by `main`, before anything here runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{self, Config};
use crate::reload::Reload;
use crate::runner;
use crate::server::Server;
use crate::shutdown::Shutdown;
use crate::state::Store;
use crate::testsink::TestSinkError;

/// Watches Akua order drafts and notifies Slack or webhooks when they change state.
#[derive(Debug, Parser)]
#[command(name = "draftwatch", version, about)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "DRAFTWATCH_CONFIG", default_value = "draftwatch.toml")]
    pub config: PathBuf,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll forever and deliver notifications (the sidecar mode).
    Run,
    /// Run one poll cycle, deliver what it found, and exit.
    Once,
    /// Validate the configuration and print what it will do.
    CheckConfig {
        /// Also check the token against the API and list the offers to watch.
        #[arg(long)]
        online: bool,
    },
    /// Run the real pipeline against a built-in simulated Akua API and print every
    /// notification to the terminal.
    Demo(crate::demo::DemoArgs),
    /// Send one clearly marked sample notification to a sink and report whether it was
    /// accepted.
    TestSink {
        /// The sink's name, as in [sinks.NAME].
        name: String,
    },
    /// Inspect and manage pending and dead-lettered notifications (while `run` is stopped).
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Print every entry, tab-separated, with a header line.
    List,
    /// Put dead-lettered entries back to pending; `retry_for` counts anew.
    Retry {
        /// An entry id (`<event id>:<sink>`) or a bare event id (all its sinks).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every dead-lettered entry.
        #[arg(long)]
        all: bool,
    },
    /// Forget an entry: an entry id (`<event id>:<sink>`) or a bare event id.
    Drop { id: String },
}

/// Exit code for a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Exit code for an invalid configuration or usage.
const EXIT_USAGE: u8 = 2;

/// Runs the parsed command and returns the process exit code.
pub async fn execute(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Demo(args) => finish(crate::demo::run(args).await),
        Command::Run => {
            let Some(config) = load_config(&cli.config) else { return ExitCode::from(EXIT_USAGE) };
            finish(run(config, cli.config.clone()).await)
        }
        Command::TestSink { name } => {
            let Some(config) = load_config(&cli.config) else { return ExitCode::from(EXIT_USAGE) };
            test_sink(&config, &name).await
        }
        Command::Once => {
            let Some(config) = load_config(&cli.config) else { return ExitCode::from(EXIT_USAGE) };
            once(config).await
        }
        Command::Outbox { action } => {
            let Some(config) = load_config(&cli.config) else { return ExitCode::from(EXIT_USAGE) };
            finish(outbox(&config, action))
        }
        Command::CheckConfig { online } => {
            let Some(config) = load_config(&cli.config) else { return ExitCode::from(EXIT_USAGE) };
            print!("{}", crate::summary::describe(&config));
            if !online {
                return ExitCode::SUCCESS;
            }
            finish(crate::summary::check_online(&config).await)
        }
    }
}

/// Loads the configuration and logs its warnings, or logs why it is invalid.
fn load_config(path: &std::path::Path) -> Option<Config> {
    match config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!(config = %path.display(), "{warning}");
            }
            Some(loaded.config)
        }
        Err(error) => {
            tracing::error!(config = %path.display(), "invalid configuration: {error}");
            None
        }
    }
}

fn outbox(config: &Config, action: OutboxAction) -> anyhow::Result<()> {
    let store = Store::open(&config.state.path)?;
    match action {
        OutboxAction::List => print!("{}", crate::outbox::list(&store)?),
        OutboxAction::Retry { id, .. } => {
            let count = crate::outbox::retry(&store, id.as_deref(), SystemTime::now())?;
            println!("{count} notification(s) queued again; `draftwatch run` or `once` delivers them");
        }
        OutboxAction::Drop { id } => {
            let count = crate::outbox::drop(&store, &id)?;
            println!("{count} notification(s) dropped");
        }
    }
    Ok(())
}

/// Runs until a signal. The HTTP server starts first when configured, so `/healthz`
/// responds while the store opens. SIGHUP reloads `path`.
async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals()?;
    // N.B. registered first: an unhandled SIGHUP would terminate the process.
    let reload = Reload::on_sighup(path)?;
    let status = crate::status::global();
    let server = match &config.server {
        Some(server) => {
            let metrics = crate::metrics::install()?;
            Some(Server::start(server.listen, status, Some(metrics), shutdown.clone()).await?)
        }
        None => None,
    };

    let mut app = App::build(config, Arc::new(SystemClock))?;
    status.configured(&app.config);
    status.set_ready(Arc::clone(&app.store));

    let result = runner::run(&mut app, shutdown.clone(), Some(reload)).await;
    shutdown.trigger();
    if let Some(server) = server {
        server.stopped().await;
    }
    result
}

/// Sends the sample notification: exit 0 when accepted, 1 when not, 2 for an unknown sink.
async fn test_sink(config: &Config, name: &str) -> ExitCode {
    match crate::testsink::send(config, name, std::time::SystemTime::now()).await {
        Ok(()) => {
            println!("sink `{name}` accepted the test notification");
            ExitCode::SUCCESS
        }
        Err(error @ TestSinkError::UnknownSink { .. }) => {
            tracing::error!("{error}; pass one of the names under [sinks]");
            ExitCode::from(EXIT_USAGE)
        }
        Err(error) => {
            tracing::error!("{error}; check the sink's URL, secret and the receiver, then run test-sink again");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn once(config: Config) -> ExitCode {
    let app = match App::build(config, Arc::new(SystemClock)) {
        Ok(app) => app,
        Err(error) => return finish(Err(error)),
    };
    let outcome = match runner::once(&app).await {
        Ok(outcome) => outcome,
        Err(error) => return finish(Err(error)),
    };
    if outcome.is_success() {
        return ExitCode::SUCCESS;
    }

    let mut problems = Vec::new();
    if let Some(error) = &outcome.sweep.offers_error {
        problems.push(format!("offers could not be listed ({error})"));
    }
    if !outcome.sweep.failed.is_empty() {
        let offers: Vec<&str> = outcome.sweep.failed.iter().map(|(offer, _)| offer.as_str()).collect();
        problems.push(format!("{} offer(s) were not listed completely: {}", offers.len(), offers.join(", ")));
    }
    if outcome.pending > 0 {
        problems.push(format!("{} notification(s) are still pending", outcome.pending));
    }
    if outcome.delivery.dead > 0 {
        problems.push(format!("{} notification(s) were dead-lettered", outcome.delivery.dead));
    }
    tracing::error!(
        "once finished with problems: {}; see the errors above, fix the cause and run again",
        problems.join("; ")
    );
    ExitCode::from(EXIT_FAILURE)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
