//! Assembly: builds the client, the store, the sinks and the workers from one configuration.

use std::sync::Arc;

use anyhow::Context;

use crate::akua::AkuaClient;
use crate::clock::Clock;
use crate::config::{Config, DeliveryConfig};
use crate::delivery::Deliverer;
use crate::pipeline::Watcher;
use crate::sinks::{self, Sink};
use crate::state::Store;

/// Everything a poll cycle needs, built once per process.
pub struct App {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub watcher: Watcher,
    pub deliverer: Deliverer,
    pub clock: Arc<dyn Clock>,
}

impl App {
    /// Opens the state directory and builds the client and every configured sink.
    pub fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let sinks = build_sinks(&config);
        App::build_with_sinks(config, sinks, clock)
    }

    /// Replaces the configuration of a running process: rebuilds the client, the sinks and
    /// both workers around the same open store. On error nothing changes.
    ///
    /// The caller keeps what needs a restart (`state.path`, `server.listen`) as it was; a
    /// different `state.path` here is ignored, because the store stays open.
    pub fn reconfigure(&mut self, config: Config) -> anyhow::Result<()> {
        let config = Arc::new(config);
        let client = AkuaClient::new(&config.akua).context("cannot build the akua client")?;
        let sinks = build_sinks(&config);

        self.watcher = Watcher::new(Arc::clone(&config), client, Arc::clone(&self.store), Arc::clone(&self.clock));
        self.deliverer = Deliverer::new(Arc::clone(&self.store), sinks, Arc::clone(&self.clock));
        self.config = config;
        Ok(())
    }

    /// Like [`App::build`], with sinks built by the caller instead of from `config.sinks`.
    pub fn build_with_sinks(
        config: Config,
        sinks: Vec<(Sink, DeliveryConfig)>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let config = Arc::new(config);
        let store = Arc::new(Store::open(&config.state.path)?);
        let client = AkuaClient::new(&config.akua).context("cannot build the akua client")?;

        Ok(App {
            watcher: Watcher::new(Arc::clone(&config), client, Arc::clone(&store), Arc::clone(&clock)),
            deliverer: Deliverer::new(Arc::clone(&store), sinks, Arc::clone(&clock)),
            config,
            store,
            clock,
        })
    }
}

/// Builds every configured sink with the retry settings that apply to it.
fn build_sinks(config: &Config) -> Vec<(Sink, DeliveryConfig)> {
    let http = sinks::http_client();
    config
        .sinks
        .iter()
        .map(|(name, sink_config)| {
            let policy = config.sink_delivery.get(name).cloned().unwrap_or_else(|| config.delivery.clone());
            (Sink::from_config(name, sink_config, http.clone()), policy)
        })
        .collect()
}
