//! `draftwatch demo`: the real pipeline against the simulated Akua API, on loopback.
//!
//! The demo starts [`crate::sim`] on 127.0.0.1, keeps its state in a temporary
//! directory, and lets a scenario move drafts through their lifecycles between polls.
//! Every notification goes through the same client, diff, store, rules and rendering as
//! in production, and is printed as it would appear in Slack. It needs no configuration,
//! no credentials and no network beyond loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::app::App;
use crate::clock::SystemClock;
use crate::config::{AkuaConfig, Config, DeliveryConfig, PollConfig, SinkConfig, StateConfig};
use crate::event::EventKind;
use crate::rules::{Rule, StatusMatcher};
use crate::secret::Secret;
use crate::shutdown::Shutdown;
use crate::sim::{Scenario, SimApi, World};
use crate::sinks::Sink;

/// Options of `draftwatch demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after this many poll cycles; without it the demo runs until Ctrl-C.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub cycles: Option<u32>,

    /// Time between two poll cycles, such as "2s" or "500ms".
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,

    /// Seed for the simulated customers; the same seed replays the same story.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// The sink name the demo routes every event to.
const DEMO_SINK: &str = "terminal";

/// Runs the demo until `--cycles` is reached or Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let sim = SimApi::start(World::demo(args.seed)).await.context("cannot start the simulated akua api on loopback")?;
    let state = tempfile::tempdir().context("cannot create a temporary state directory")?;
    let config = demo_config(&sim, state.path().join("state"), args.interval)?;
    let sinks = vec![(Sink::terminal(DEMO_SINK), DeliveryConfig::default())];
    let app = App::build_with_sinks(config, sinks, Arc::new(SystemClock))?;
    let shutdown = Shutdown::on_signals()?;
    let mut scenario = Scenario::new(args.seed);

    println!("draftwatch demo: simulated Akua API at {}", sim.base_url());
    println!("state in {} (removed on exit)", state.path().display());
    println!("every event is routed to this terminal by one catch-all rule; a real configuration");
    println!("routes with its own [[rules]], so `draftwatch check-config` shows what yours would send");
    println!("lines marked `akua:` are what the simulated customers did; the blocks below them are");
    println!("the notifications draftwatch sent, as Slack shows them (header, text, fields, rule)");
    if args.cycles.is_none() {
        println!("press Ctrl-C to stop");
    }

    let mut cycle: u32 = 0;
    while args.cycles.is_none_or(|cycles| cycle < cycles) {
        cycle += 1;
        println!();
        println!("── cycle {cycle} ──");
        if cycle > 1 {
            let changes = sim.with_world(|world| scenario.step(world));
            for change in &changes {
                println!("  akua: {change}");
            }
            println!();
        }

        let sweep = app.watcher.sweep().await;
        if let Some(error) = sweep
            .failed
            .first()
            .map(|(_, error)| error.to_string())
            .or(sweep.offers_error.as_ref().map(ToString::to_string))
        {
            println!("sweep failed: {error}");
        }
        let delivery = app.deliverer.deliver_due().await?;
        if sweep.baselined > 0 {
            println!(
                "{} offer(s) seen for the first time: their drafts were recorded silently (the baseline)",
                sweep.baselined
            );
        }
        println!(
            "swept {} draft(s) in {} offer(s): {} event(s), {} notification(s) shown",
            sweep.drafts, sweep.offers, sweep.events, delivery.delivered
        );

        if args.cycles.is_some_and(|cycles| cycle >= cycles) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = shutdown.wait() => break,
        }
    }

    app.store.flush()?;
    sim.shutdown().await;
    Ok(())
}

fn demo_config(sim: &SimApi, state_path: std::path::PathBuf, interval: Duration) -> anyhow::Result<Config> {
    let base_url = url::Url::parse(&sim.base_url()).context("simulated api url is invalid")?;
    let every_event = Rule {
        name: Some("everything".to_owned()),
        events: EventKind::ALL.to_vec(),
        from: StatusMatcher::Any,
        to: StatusMatcher::Any,
        fields: Vec::new(),
        sinks: vec![DEMO_SINK.to_owned()],
    };
    let mut sinks = BTreeMap::new();
    sinks.insert(DEMO_SINK.to_owned(), SinkConfig::Console);

    Ok(Config {
        akua: AkuaConfig {
            base_url,
            token: Secret::new(sim.token()),
            context: None,
            offers: None,
            page_size: 100,
            request_timeout: Duration::from_secs(5),
        },
        poll: PollConfig { interval, jitter: Duration::ZERO, notify_existing: false, ..PollConfig::default() },
        state: StateConfig { path: state_path },
        delivery: DeliveryConfig::default(),
        sink_delivery: BTreeMap::new(),
        sinks,
        rules: vec![every_event],
        stuck: BTreeMap::new(),
        server: None,
    })
}
