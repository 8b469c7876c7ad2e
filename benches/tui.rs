//! The TUI at scale (issue 4, section 3), on a database of a million keys.
//!
//! ```text
//! cargo bench --bench tui                         # 1,000,000 keys, 1,000,000 usage rows
//! KEYTOP_BENCH_SCALE=full cargo bench --bench tui # 1,000,000 keys, 10,000,000 usage rows, 10,000 users
//! KEYTOP_BENCH_SCALE=small cargo bench --bench tui # 20,000 keys: a quick check of the harness
//! ```
//!
//! The database is filled once with the release `keytop demo` and cached under
//! `target/tui-bench/<scale>-m<migrations>/`, so reruns start measuring at once. Every figure is
//! the median of at least five runs, printed with its min and max:
//!
//! - start: the release binary spawned in a pseudo-terminal until the first key row is on screen
//!   (vt100 parses the output; a "Loading…" frame does not count);
//! - frame: one frame at 200×60 through the real crossterm backend into a byte counter, with the
//!   first page loaded, in process (the list after a step down; and the whole screen redrawn);
//! - switch: in process too, from a screen's key to the first frame of that screen with its
//!   data (the fleet's series, top lists and attention lists, a page of users, a user's chart
//!   and keys, a page of the audit log, the key list);
//! - memory: the child's VmHWM after paging through thousands of rows, opening details, filtering;
//! - bytes: what the TUI writes to the pseudo-terminal for one step down the list at 100×30, and
//!   at 160×48 with the detail beside it, counted from the key press until output settles (after
//!   the detail's data has loaded).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keytop::crypto::MasterKey;
use keytop::service::{KeyService, ServiceSettings};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// Runs per figure (the median is reported).
const RUNS: usize = 7;
/// Output silence that counts as "the frame is done".
const QUIET: Duration = Duration::from_millis(250);
const PATIENCE: Duration = Duration::from_secs(60);

struct Scale {
    label: &'static str,
    users: u32,
    keys: u32,
    usage_rows: u64,
}

fn scale() -> Scale {
    match std::env::var("KEYTOP_BENCH_SCALE").unwrap_or_default().as_str() {
        "full" => Scale { label: "full", users: 10_000, keys: 1_000_000, usage_rows: 10_000_000 },
        "small" => Scale { label: "small", users: 200, keys: 20_000, usage_rows: 100_000 },
        "" | "default" => Scale { label: "default", users: 2_000, keys: 1_000_000, usage_rows: 1_000_000 },
        other => panic!("KEYTOP_BENCH_SCALE={other}: expected default, small or full"),
    }
}

/// A cached database with its master key and a sandbox for the child's XDG directories.
struct Fixture {
    dir: PathBuf,
    db_url: String,
    master_key: String,
}

impl Fixture {
    fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.dir.join(name).display().to_string();
        vec![
            ("KEYTOP_MASTER_KEY".into(), self.master_key.clone()),
            ("XDG_CONFIG_HOME".into(), path("config")),
            ("XDG_STATE_HOME".into(), path("state")),
            ("XDG_DATA_HOME".into(), path("data")),
            ("KEYTOP_ACTOR".into(), "tui-bench".into()),
            ("TERM".into(), "xterm-256color".into()),
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ]
    }

    async fn service(&self) -> KeyService {
        let store = keytop::store::open(&self.db_url).await.expect("the cached database opens");
        let master_key = MasterKey::from_base64(&self.master_key).map_err(|e| e.to_string());
        KeyService::new(store, master_key, ServiceSettings::default(), "tui-bench".into())
    }
}

/// The database for `scale`, built once with the release `keytop demo` (migrations in the cache
/// key: a new migration means a new database, not a slow first start).
fn fixture(scale: &Scale) -> Fixture {
    let migrations = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/migrations/sqlite"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/tui-bench/{}-m{migrations}", scale.label));
    let db_url = format!("sqlite://{}", dir.join("keytop.db").display());
    let done = dir.join("complete");
    let key_file = dir.join("master.key");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (_, master_key) = MasterKey::generate();
        std::fs::write(&key_file, &master_key).unwrap();
        let fixture = Fixture { dir: dir.clone(), db_url: db_url.clone(), master_key };
        eprintln!("building the {} database in {} (once)…", scale.label, dir.display());
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_keytop"))
            .args(["--db", &db_url, "demo", "--seed", "42", "--days", "90"])
            .args(["--users", &scale.users.to_string(), "--keys", &scale.keys.to_string()])
            .args(["--usage-rows", &scale.usage_rows.to_string()])
            .env_clear()
            .envs(fixture.env())
            .status()
            .unwrap();
        assert!(status.success(), "keytop demo failed");
        eprintln!("built in {:.1?}", started.elapsed());
        std::fs::write(&done, "").unwrap();
    }
    let master_key = std::fs::read_to_string(&key_file).unwrap();
    Fixture { dir, db_url, master_key }
}

/// The TUI in a pseudo-terminal; a reader thread feeds vt100 and counts bytes.
struct Pty {
    output: Arc<Mutex<Output>>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

struct Output {
    screen: vt100::Parser,
    bytes: usize,
    last: Instant,
}

impl Pty {
    /// Spawns `keytop --read-only` (the sweep timer off: the cached database never changes).
    fn spawn(fixture: &Fixture, columns: u16, rows: u16) -> (Pty, Instant) {
        Pty::spawn_with(fixture, columns, rows, &[])
    }

    /// [`Pty::spawn`] with more environment variables (or others' values): the terminal's colours.
    fn spawn_with(fixture: &Fixture, columns: u16, rows: u16, terminal: &[(&str, &str)]) -> (Pty, Instant) {
        let pair =
            native_pty_system().openpty(PtySize { rows, cols: columns, pixel_width: 0, pixel_height: 0 }).unwrap();
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_keytop"));
        command.args(["--db", &fixture.db_url, "--read-only"]);
        command.env_clear();
        for (name, value) in fixture.env() {
            command.env(name, value);
        }
        for (name, value) in terminal {
            command.env(name, value);
        }
        let output = Arc::new(Mutex::new(Output {
            screen: vt100::Parser::new(rows, columns, 0),
            bytes: 0,
            last: Instant::now(),
        }));
        let mut reader = pair.master.try_clone_reader().unwrap();
        let shared = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let mut output = shared.lock().unwrap();
                output.screen.process(&buffer[..read]);
                output.bytes += read;
                output.last = Instant::now();
            }
        });
        let started = Instant::now();
        let child = pair.slave.spawn_command(command).unwrap();
        drop(pair.slave);
        let writer = pair.master.take_writer().unwrap();
        (Pty { output, writer, child, _master: pair.master }, started)
    }

    fn contents(&self) -> String {
        self.output.lock().unwrap().screen.screen().contents()
    }

    fn bytes(&self) -> usize {
        self.output.lock().unwrap().bytes
    }

    fn wait_for(&self, what: &str, ready: impl Fn(&str) -> bool) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if ready(&self.contents()) {
                return Instant::now();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; the screen:\n{}", self.contents());
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Waits until the screen is loaded (no "loading" mark, counts in) and output has been quiet
    /// for [`QUIET`].
    fn settle(&self) {
        self.wait_for("a settled screen", |s| !s.contains("⟳ loading") && !s.contains("counting keys"));
        let deadline = Instant::now() + PATIENCE;
        loop {
            let last = self.output.lock().unwrap().last;
            if last.elapsed() >= QUIET && !self.contents().contains("⟳ loading") {
                return;
            }
            assert!(Instant::now() < deadline, "the output never settled");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    fn peak_memory_kb(&self) -> u64 {
        let pid = self.child.process_id().expect("the child has a pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM in /proc/pid/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn quit(mut self) {
        // `q` quits from the list; the detail goes back to it first.
        self.keys(ESC);
        std::thread::sleep(Duration::from_millis(100));
        self.keys("q");
        let deadline = Instant::now() + PATIENCE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "keytop did not quit; the screen:\n{}", self.contents());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A key row is on screen: the selection mark of the first row.
fn has_key_row(screen: &str) -> bool {
    screen.contains("▶ ")
}

const DOWN: &str = "j";
const PAGE_DOWN: &str = "\x1b[6~";
const PAGE_UP: &str = "\x1b[5~";
const ENTER: &str = "\r";
const ESC: &str = "\x1b";

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    let runs = samples.len();
    let median = if runs % 2 == 1 { samples[runs / 2] } else { (samples[runs / 2 - 1] + samples[runs / 2]) / 2.0 };
    Stats { median, min: samples[0], max: samples[runs - 1], runs }
}

fn row(figure: &str, stats: &Stats, unit: &str, target: f64) {
    let verdict = if stats.median <= target {
        "met".to_string()
    } else {
        format!("MISSED by {:.0}%", (stats.median / target - 1.0) * 100.0)
    };
    println!(
        "| {figure} | {:.2} {unit} | {:.2}–{:.2} | {} | ≤ {target} {unit} | {:.2}× target | {verdict} |",
        stats.median,
        stats.min,
        stats.max,
        stats.runs,
        stats.median / target,
    );
}

fn start_to_first_frame(fixture: &Fixture) -> Stats {
    let mut samples = Vec::new();
    // One unmeasured run first: the OS page cache then holds the database, as on a server in use.
    for run in 0..=RUNS {
        let (pty, started) = Pty::spawn(fixture, 100, 30);
        let shown = pty.wait_for("the first key row", has_key_row);
        if run > 0 {
            samples.push((shown - started).as_secs_f64() * 1000.0);
        }
        pty.settle();
        pty.quit();
    }
    stats(samples)
}

/// The steps the switch figure goes through, in order: the key pressed and where it leads. It
/// opens the first user on the way through the users screen and ends where it starts, on the
/// keys screen.
const SWITCHES: [(&str, &str); 6] = [
    ("2", "keys → usage screen"),
    ("3", "usage → users screen"),
    ("enter", "users → the first user (chart and keys)"),
    ("esc", "the user → back to the users"),
    ("4", "users → audit screen"),
    ("1", "audit → keys screen"),
];

/// For each step of [`SWITCHES`]: the time from its key to the first frame it leads to, with its
/// data, at 120×32 (the key pressed, every fetch it started answered, the frame drawn), over
/// `RUNS` rounds after an unmeasured one.
async fn screen_switches(fixture: &Fixture) -> Vec<(&'static str, Stats)> {
    let config = keytop::config::Config::default();
    let options = keytop::cli::tui_options(&config, true);
    let mut bench = keytop::tui::bench::Bench::new(fixture.service().await, &options, (120, 32)).await.unwrap();
    let mut samples = vec![Vec::new(); SWITCHES.len()];
    for round in 0..=RUNS {
        for ((key, _), times) in SWITCHES.iter().zip(&mut samples) {
            let started = Instant::now();
            bench.press(key).await.unwrap();
            bench.draw().unwrap();
            if round > 0 {
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    SWITCHES.iter().zip(samples).map(|((_, step), times)| (*step, stats(times))).collect()
}

/// Median of `frames` draws after alternating steps down and up, and of full redraws.
async fn frame_times(fixture: &Fixture) -> (Stats, Stats, Stats, usize) {
    let config = keytop::config::Config::default();
    let options = keytop::cli::tui_options(&config, true);
    let mut bench = keytop::tui::bench::Bench::new(fixture.service().await, &options, (200, 60)).await.unwrap();
    let (mut step, mut full, mut step_bytes) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..201 {
        bench.press(if i % 2 == 0 { "j" } else { "k" }).await.unwrap();
        let started = Instant::now();
        let bytes = bench.draw().unwrap();
        step.push(started.elapsed().as_secs_f64() * 1000.0);
        step_bytes.push(bytes as f64);
        bench.forget_screen().unwrap();
        let started = Instant::now();
        bench.draw().unwrap();
        full.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (stats(step), stats(full), stats(step_bytes), bench.rows_held())
}

fn peak_memory(fixture: &Fixture) -> (Stats, String) {
    let mut samples = Vec::new();
    let mut script = String::new();
    for _ in 0..5 {
        let (mut pty, _) = Pty::spawn(fixture, 100, 30);
        pty.wait_for("the first key row", has_key_row);
        pty.settle();
        let mut pressed = 0;
        let mut press = |pty: &mut Pty, keys: &str, times: usize| {
            for _ in 0..times {
                pty.keys(keys);
                std::thread::sleep(Duration::from_millis(4));
            }
            pressed += times;
            pty.settle();
        };
        // About 200 pages of 27 rows, then rows one by one, details, a filter, the end and back.
        for _ in 0..20 {
            press(&mut pty, PAGE_DOWN, 10);
        }
        press(&mut pty, DOWN, 300);
        press(&mut pty, ENTER, 1);
        press(&mut pty, DOWN, 30);
        press(&mut pty, "]", 2);
        press(&mut pty, ESC, 1);
        press(&mut pty, "/", 1);
        press(&mut pty, "search", 1);
        press(&mut pty, ENTER, 1);
        for _ in 0..5 {
            press(&mut pty, PAGE_DOWN, 10);
        }
        press(&mut pty, ENTER, 1);
        press(&mut pty, DOWN, 10);
        press(&mut pty, ESC, 1);
        press(&mut pty, "/", 1);
        press(&mut pty, ESC, 1);
        press(&mut pty, "G", 1);
        for _ in 0..5 {
            press(&mut pty, PAGE_UP, 10);
        }
        press(&mut pty, "g", 1);
        samples.push(pty.peak_memory_kb() as f64 / 1024.0);
        script = format!(
            "{pressed} keys: 200 PgDn, 300 j, detail + 30 j + range, filter \"search\" + 50 PgDn + detail, G + 50 PgUp, g"
        );
        pty.quit();
    }
    (stats(samples), script)
}

/// Bytes written for one step down; `detail` opens the detail first (beside the list at 160).
fn bytes_per_step(fixture: &Fixture, (columns, rows): (u16, u16), detail: bool, terminal: &[(&str, &str)]) -> Stats {
    let (mut pty, _) = Pty::spawn_with(fixture, columns, rows, terminal);
    pty.wait_for("the first key row", has_key_row);
    pty.settle();
    if detail {
        pty.keys(ENTER);
        pty.wait_for("the detail", |s| s.contains("Totals"));
        pty.settle();
    }
    let mut samples = Vec::new();
    for _ in 0..RUNS + 4 {
        let before = pty.bytes();
        pty.keys(DOWN);
        // The first byte of the answer, then whatever follows until output is quiet.
        let deadline = Instant::now() + PATIENCE;
        while pty.bytes() == before {
            assert!(Instant::now() < deadline, "no output after a step down");
            std::thread::sleep(Duration::from_micros(200));
        }
        if detail {
            // The frame with the new key's data, not just the one with the moved selection.
            std::thread::sleep(Duration::from_millis(20));
            pty.wait_for("the next key's detail", |s| s.contains("Totals") && !s.contains("⟳ loading"));
        }
        pty.settle();
        samples.push((pty.bytes() - before) as f64);
        if std::env::var("KEYTOP_BENCH_DEBUG").is_ok() {
            eprintln!("{} bytes; the screen:\n{}", pty.bytes() - before, pty.contents());
        }
    }
    pty.quit();
    stats(samples)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: run anyway.
    let scale = scale();
    let fixture = fixture(&scale);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "TUI at scale: SQLite, {} keys, {} usage rows (KEYTOP_BENCH_SCALE={}), {} runs per figure unless said",
        scale.keys, scale.usage_rows, scale.label, RUNS
    );
    println!();
    println!("| figure | median | min–max | runs | target | ratio | verdict |");
    println!("|---|---|---|---|---|---|---|");
    let only = std::env::var("KEYTOP_BENCH_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if wanted("start") {
        let start = start_to_first_frame(&fixture);
        row("start → first key row drawn, 100×30 (ms)", &start, "ms", 300.0);
    }
    if wanted("frame") {
        let (step, full, step_bytes, held) = runtime.block_on(frame_times(&fixture));
        row("one frame at 200×60 after a step (ms)", &step, "ms", 2.0);
        row("one full frame at 200×60, whole screen redrawn (ms)", &full, "ms", 2.0);
        println!(
            "(frame at 200×60 after a step wrote {:.0} bytes, median; the window held {held} rows)",
            step_bytes.median
        );
    }
    if wanted("switch") {
        for (step, switch) in runtime.block_on(screen_switches(&fixture)) {
            row(&format!("{step}, first frame with data, 120×32 (ms)"), &switch, "ms", 50.0);
        }
    }
    if wanted("memory") {
        let (memory, script) = peak_memory(&fixture);
        row("peak memory while browsing, VmHWM (MB)", &memory, "MB", 80.0);
        println!("(browsing script: {script})");
    }
    if wanted("bytes") {
        let list = bytes_per_step(&fixture, (100, 30), false, &[]);
        row("bytes for one step down, 100×30 list", &list, "B", 1500.0);
        let detail = bytes_per_step(&fixture, (160, 48), true, &[]);
        row("bytes for one step down, 160×48 list + detail", &detail, "B", 6000.0);
        // The figures above are at 256 colours (TERM=xterm-256color); the theme's colours take
        // fewer bytes at 16 and more in truecolor.
        let basic = bytes_per_step(&fixture, (100, 30), false, &[("TERM", "xterm")]);
        row("bytes for one step down, 100×30 list, 16 colours", &basic, "B", 1500.0);
        let truecolor = bytes_per_step(&fixture, (100, 30), false, &[("COLORTERM", "truecolor")]);
        row("bytes for one step down, 100×30 list, truecolor", &truecolor, "B", 1500.0);
    }
}
