//! Measures what a sweep costs, with N drafts served by the simulated API on loopback.
//! It measures a sweep with no change and one with 1% of the drafts changed, for
//! `draftwatch once` and for a warm sweep inside a long-running process. Beside them it
//! measures downloading the same pages with curl.
//!
//! Run it through `scripts/bench-sweep.sh`, which builds it and the binary in release mode.
//! The simulated API runs in a child process, so its CPU and memory are not counted. CPU
//! times and peak memory come from `wait4` for child processes and from
//! `CLOCK_PROCESS_CPUTIME_ID` and `/proc/self/status` inside the warm process, so the tool
//! runs on Linux only.
//!
//! ```text
//! sweep_bench [DRAFTS...]          # default 10000
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use draftwatch::akua::DraftStatus;
use draftwatch::app::App;
use draftwatch::clock::SystemClock;
use draftwatch::sim::{DraftSpec, OfferSpec, SimApi, World};

/// How many rounds of one curl download and one no-change warm sweep are made; the medians
/// count. The two alternate, so that other work on the machine disturbs both alike.
const ROUNDS: usize = 9;

/// Statuses of the generated drafts, cycled; most drafts of a real offer have finished.
const STATUSES: &[DraftStatus] = &[
    DraftStatus::Done,
    DraftStatus::Done,
    DraftStatus::Terminated,
    DraftStatus::Done,
    DraftStatus::Configure,
    DraftStatus::Done,
    DraftStatus::Terminated,
    DraftStatus::Payment,
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(args[1].parse()?),
        Some("warm") => warm(Path::new(&args[1])),
        _ => {
            let sizes: Vec<usize> = if args.is_empty() { vec![10_000] } else { parse_sizes(&args)? };
            print_machine();
            for drafts in sizes {
                bench(drafts)?;
            }
            Ok(())
        }
    }
}

fn parse_sizes(args: &[String]) -> anyhow::Result<Vec<usize>> {
    args.iter()
        .map(|arg| arg.replace('_', "").parse().map_err(|_| anyhow::anyhow!("`{arg}` is not a number of drafts")))
        .collect()
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| info.lines().find(|line| line.starts_with("model name")).map(str::to_owned))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("machine: {} ({cores} cores)", cpu.trim_start_matches("model name").trim_start_matches([' ', '\t', ':']));
}

/// One measured run: wall seconds, CPU seconds (user + system), peak RSS in KiB, requests.
#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    wall: f64,
    cpu: f64,
    max_rss_kib: u64,
    requests: u64,
}

fn bench(drafts: usize) -> anyhow::Result<()> {
    let mut sim = Sim::start(drafts)?;
    let dir = tempfile::tempdir()?;
    let bin_dir = std::env::current_exe()?.parent().and_then(Path::parent).map(Path::to_owned).unwrap();
    let draftwatch = bin_dir.join("draftwatch");
    anyhow::ensure!(draftwatch.exists(), "{} is missing; build it with --release first", draftwatch.display());

    let urls = sim.page_urls()?;
    let curl = curl_config(&sim, &urls, dir.path())?;

    let config = write_config(&sim, dir.path())?;
    let baseline = sim.measured(|| timed(Command::new(&draftwatch).arg("--config").arg(&config).arg("once")))?;
    let baseline_size = dir_size(&dir.path().join("state"))?;
    let once_still = sim.measured(|| timed(Command::new(&draftwatch).arg("--config").arg(&config).arg("once")))?;
    sim.change(drafts / 100)?;
    let once_changed = sim.measured(|| timed(Command::new(&draftwatch).arg("--config").arg(&config).arg("once")))?;

    let (mut floor, warm_still, warm_changed) = warm_runs(&mut sim, &config, &curl, drafts / 100)?;
    floor.requests = urls.len() as u64;

    println!("\n### {drafts} drafts, {} pages\n", urls.len());
    println!("| run | wall | CPU | peak RSS | requests | CPU / floor |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |name: &str, m: Measure| {
        println!(
            "| {name} | {:.3} s | {:.3} s | {:.1} MiB | {} | {:.2} |",
            m.wall,
            m.cpu,
            m.max_rss_kib as f64 / 1024.0,
            m.requests,
            m.cpu / floor.cpu.max(0.001)
        );
    };
    row(&format!("curl, same pages (floor, median of {ROUNDS})"), floor);
    row("once, baseline", baseline);
    row("once, no change", once_still);
    row("once, 1% changed", once_changed);
    row(&format!("warm sweep in run, no change (median of {ROUNDS})"), warm_still);
    row("warm sweep in run, 1% changed", warm_changed);
    let mib = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    let final_size = dir_size(&dir.path().join("state"))?;
    println!(
        "\nState directory: {:.0} MiB after the baseline, {:.0} MiB after all runs.",
        mib(baseline_size),
        mib(final_size)
    );
    sim.quit();
    Ok(())
}

/// Returns the bytes of all files under `path`.
fn dir_size(path: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() { dir_size(&entry.path())? } else { metadata.len() };
    }
    Ok(total)
}

/// Runs a command and reads its wall time, and its CPU time and peak RSS from `wait4`.
fn timed(command: &mut Command) -> anyhow::Result<Measure> {
    let started = Instant::now();
    let child = command.env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let pid = libc::pid_t::try_from(child.id())?;

    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value, and `wait4` only writes to the two
    // pointers, which point to live locals.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed().as_secs_f64();
    anyhow::ensure!(waited == pid, "wait4 failed: {}", std::io::Error::last_os_error());
    anyhow::ensure!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{command:?} failed: status {status}");

    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    Ok(Measure { wall, cpu, max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0), requests: 0 })
}

/// Returns the run with the median CPU time.
fn median(mut runs: Vec<Measure>) -> Measure {
    runs.sort_by(|a, b| a.cpu.total_cmp(&b.cpu));
    runs[runs.len() / 2]
}

/// Writes the curl configuration that downloads every page over one connection: the floor.
fn curl_config(sim: &Sim, urls: &[String], dir: &Path) -> anyhow::Result<PathBuf> {
    let config = dir.join("curl.conf");
    let mut text = format!("silent\nheader = \"Authorization: Bearer {}\"\n", sim.token);
    for url in urls {
        text.push_str(&format!("url = \"{url}\"\noutput = \"/dev/null\"\n"));
    }
    std::fs::write(&config, text)?;
    Ok(config)
}

fn write_config(sim: &Sim, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("draftwatch.toml");
    let text = format!(
        r#"
[akua]
base_url = "{}"
token = "{}"
offers = ["{}"]
request_timeout = "60s"

[state]
path = "{}"

[sinks.out]
type = "console"

[[rules]]
events = ["status_changed", "created", "updated", "removed"]
sinks = ["out"]
"#,
        sim.base_url,
        sim.token,
        sim.offer,
        dir.join("state").display()
    );
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Runs the warm process on the state `once` left, alternating its no-change sweeps with
/// curl downloads, and returns the floor, the no-change sweep and the 1% sweep.
fn warm_runs(sim: &mut Sim, config: &Path, curl: &Path, changes: usize) -> anyhow::Result<(Measure, Measure, Measure)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("warm")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stderr.take().unwrap());

    // The console sink writes to stdout, so the measurements come on stderr, marked.
    let mut ask = |sim: &mut Sim, command: &str| -> anyhow::Result<Measure> {
        let before = sim.requests()?;
        writeln!(input, "{command}")?;
        let mut line = String::new();
        while !line.starts_with("BENCH ") {
            line.clear();
            anyhow::ensure!(output.read_line(&mut line)? > 0, "warm process ended early");
        }
        let fields: Vec<f64> = line[6..].split_whitespace().map(|field| field.parse().unwrap_or(0.0)).collect();
        anyhow::ensure!(fields.len() == 3, "unexpected line from the warm process: `{line}`");
        let requests = sim.requests()? - before;
        Ok(Measure { wall: fields[0], cpu: fields[1], max_rss_kib: fields[2] as u64, requests })
    };

    ask(sim, "sweep")?;
    let mut floors = Vec::with_capacity(ROUNDS);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        floors.push(timed(Command::new("curl").arg("--config").arg(curl))?);
        rounds.push(ask(sim, "sweep")?);
    }
    // The peak is a high-water mark, so the last round's is the peak of them all.
    let peak = rounds.last().map_or(0, |round| round.max_rss_kib);
    let still = Measure { max_rss_kib: peak, ..median(rounds) };
    sim.change(changes)?;
    let changed = ask(sim, "sweep")?;
    // Closing stdin ends the warm process.
    drop(input);
    child.wait()?;
    Ok((median(floors), still, changed))
}

/// Runs the child process that stands for `draftwatch run`. It sweeps and delivers on
/// request and prints wall seconds, CPU seconds and peak RSS in KiB for each cycle to stderr.
fn warm(config: &Path) -> anyhow::Result<()> {
    let config = draftwatch::config::load(config)?.config;
    // The same runtime as the binary's.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let app = App::build(config, Arc::new(SystemClock))?;

    for line in std::io::stdin().lock().lines() {
        if line? != "sweep" {
            break;
        }
        let cpu_before = process_cpu();
        let started = Instant::now();
        runtime.block_on(async {
            app.watcher.sweep().await;
            app.deliverer.deliver_due().await
        })?;
        let wall = started.elapsed().as_secs_f64();
        eprintln!("BENCH {wall:.4} {:.4} {}", process_cpu() - cpu_before, peak_rss_kib());
    }
    Ok(())
}

/// Returns this process's user + system CPU seconds, all threads together.
fn process_cpu() -> f64 {
    // SAFETY: an all-zero `timespec` is a valid value, and the call only writes to it.
    let mut time: libc::timespec = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) };
    assert_eq!(result, 0, "CLOCK_PROCESS_CPUTIME_ID is always available on Linux");
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The simulated API in a child process, driven over its stdin.
struct Sim {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    base_url: String,
    token: String,
    offer: String,
}

impl Sim {
    fn start(drafts: usize) -> anyhow::Result<Sim> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg(drafts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        output.read_line(&mut line)?;
        let parts: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        anyhow::ensure!(parts.len() == 4 && parts[0] == "READY", "simulated api did not start: `{line}`");
        Ok(Sim { child, input, output, base_url: parts[1].clone(), token: parts[2].clone(), offer: parts[3].clone() })
    }

    fn command(&mut self, command: &str) -> anyhow::Result<String> {
        writeln!(self.input, "{command}")?;
        let mut line = String::new();
        self.output.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }

    /// Returns how many requests the simulated API has served so far.
    fn requests(&mut self) -> anyhow::Result<u64> {
        Ok(self.command("requests")?.parse()?)
    }

    /// Changes `count` drafts: half move to another status, half get a new etag only.
    fn change(&mut self, count: usize) -> anyhow::Result<()> {
        self.command(&format!("change {count}"))?;
        Ok(())
    }

    /// Returns the URL of every page of the offer's listing.
    fn page_urls(&mut self) -> anyhow::Result<Vec<String>> {
        Ok(self.command("pages")?.split_whitespace().map(str::to_owned).collect())
    }

    /// Runs `run` and adds the requests the simulated API served meanwhile.
    fn measured(&mut self, run: impl FnOnce() -> anyhow::Result<Measure>) -> anyhow::Result<Measure> {
        let before = self.requests()?;
        let mut measure = run()?;
        measure.requests = self.requests()? - before;
        Ok(measure)
    }

    fn quit(mut self) {
        let _ = writeln!(self.input, "quit");
        let _ = self.child.wait();
    }
}

/// Runs the child process that serves the simulated API with `drafts` drafts in one offer.
fn serve(drafts: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let mut world = World::with_seed(7);
    let offer = world.add_offer(OfferSpec::paid())?;
    let mut ids = Vec::with_capacity(drafts);
    for index in 0..drafts {
        let status = STATUSES[index % STATUSES.len()].clone();
        ids.push(world.add_draft(DraftSpec::new(&offer).status(status))?);
    }
    let sim = runtime.block_on(SimApi::start(world))?;
    println!("READY {} {} {offer}", sim.base_url(), sim.token());

    let mut changed = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("requests") => println!("{}", sim.counters().requests),
            Some("change") => {
                let count: usize = words.next().unwrap_or("0").parse()?;
                sim.with_world(|world| change_drafts(world, &ids, changed, count));
                changed += count;
                println!("ok");
            }
            Some("pages") => {
                let urls = runtime.block_on(page_urls(&sim, &offer))?;
                println!("{}", urls.join(" "));
            }
            _ => break,
        }
    }
    Ok(())
}

/// Changes `count` drafts starting at `start`, spread over the whole listing.
fn change_drafts(world: &mut World, ids: &[String], start: usize, count: usize) {
    let step = (ids.len() / count.max(1)).max(1);
    for index in 0..count {
        let id = &ids[(start + index * step) % ids.len()];
        if index % 2 == 0 {
            let _ = world.touch(id);
        } else {
            let status = if world.draft_status(id) == Some(DraftStatus::Done) {
                DraftStatus::Terminated
            } else {
                DraftStatus::Done
            };
            let _ = world.set_status(id, status, None);
        }
    }
}

/// Walks the listing once and returns each page's URL, for curl.
async fn page_urls(sim: &SimApi, offer: &str) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let mut urls = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = url::Url::parse(&format!("{}/order_drafts", sim.base_url()))?;
        url.query_pairs_mut().append_pair("offer", offer).append_pair("limit", "100");
        if let Some(cursor) = &cursor {
            url.query_pairs_mut().append_pair("cursor", cursor);
        }
        let page: serde_json::Value = client
            .get(url.as_str())
            .bearer_auth(sim.token())
            .timeout(Duration::from_secs(60))
            .send()
            .await?
            .json()
            .await?;
        urls.push(url.to_string());
        match page["next_cursor"].as_str() {
            Some(next) if page["has_more"] == true => cursor = Some(next.to_owned()),
            _ => return Ok(urls),
        }
    }
}
