//! Shared set-up: a simulated API with one offer, receivers, a config file and the binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use draftwatch::akua::DraftStatus;
use draftwatch::sim::{DraftSpec, OfferSpec, SimApi, World};

use crate::receiver::Receiver;

/// The signing secret every test webhook uses.
pub const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A simulated API, a Slack receiver and a webhook receiver, with a state directory.
pub struct Harness {
    pub sim: SimApi,
    pub offer: String,
    pub slack: Receiver,
    pub hook: Receiver,
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Starts a world with one paid offer and no drafts.
    pub async fn start() -> Harness {
        let mut world = World::with_seed(11);
        let offer = world.add_offer(OfferSpec::paid()).unwrap();
        let sim = SimApi::start(world).await.unwrap();
        Harness {
            sim,
            offer,
            slack: Receiver::start().await,
            hook: Receiver::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Adds a draft in `status` with `email` and returns its id.
    pub fn add_draft(&self, status: DraftStatus, email: &str) -> String {
        self.sim.with_world(|world| world.add_draft(DraftSpec::new(&self.offer).status(status).email(email)).unwrap())
    }

    pub fn set_status(&self, id: &str, status: DraftStatus) {
        self.sim.with_world(|world| world.set_status(id, status, None).unwrap());
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Returns the configuration the tests share: Slack hears every transition into
    /// `install` or `terminated`, and the signed webhook hears every event. `extra` is appended.
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            r#"
[akua]
base_url = "{base_url}"
token = "{token}"
page_size = 100
request_timeout = "5s"

[poll]
interval = "1s"

[state]
path = "{state}"

[sinks.sales]
type = "slack"
webhook_url = "{slack}"

[sinks.ops]
type = "webhook"
url = "{hook}"
secret = "{secret}"
timeout = "5s"

[[rules]]
name = "paid"
to = ["install", "terminated"]
sinks = ["sales"]

[[rules]]
name = "everything"
sinks = ["ops"]
{extra}
"#,
            base_url = self.sim.base_url(),
            token = self.sim.token(),
            state = self.state_path().display(),
            slack = self.slack.url("/services/T000/B000/XXXX"),
            hook = self.hook.url("/hooks/akua"),
            secret = WEBHOOK_SECRET,
        )
    }

    /// Starts a harness with one draft in `status`, writes the shared configuration and
    /// records the baseline with the real binary. Returns the draft id and config path.
    pub async fn baselined(status: DraftStatus) -> (Harness, String, PathBuf) {
        let harness = Harness::start().await;
        let draft = harness.add_draft(status, "buyer@example.com");
        let config = harness.write_config("");
        let baseline = draftwatch(&config, &["once"]).await;
        assert!(baseline.status.success(), "baseline failed: {}", stderr(&baseline));
        (harness, draft, config)
    }

    /// Writes the configuration file and returns its path.
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let path = self.dir.path().join("draftwatch.toml");
        std::fs::write(&path, self.config_text(extra)).unwrap();
        path
    }
}

/// Runs the draftwatch binary with `args` and waits for it, without blocking the runtime
/// that serves the simulated API.
pub async fn draftwatch(config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_draftwatch"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("DRAFTWATCH_CONFIG")
        .output()
        .await
        .unwrap()
}

/// Returns stderr as text, for assertions and failure messages.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `draftwatch run` child process, killed when dropped.
pub struct Running {
    pub child: tokio::process::Child,
}

impl Running {
    /// Starts `draftwatch run` with stderr captured.
    pub fn start(config: &Path) -> Running {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_draftwatch"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Running { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the child is running")
    }

    /// Sends a signal by name (`TERM`, `HUP`) with the `kill` command.
    pub async fn signal(&self, name: &str) {
        let status = tokio::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the exit, up to `limit`; `None` when it did not exit in time.
    pub async fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(limit, self.child.wait()).await.ok().map(Result::unwrap)
    }
}

/// Polls `condition` every 50 ms for up to 15 seconds; panics with `what` if it never holds.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
