//! SIGTERM and SIGHUP (the terminal or the SSH session closed) end the TUI like `q`: the terminal
//! gets its restore sequences and `keytop --demo` removes its throwaway database directory. The
//! demo shows live updates like any TUI.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

const PATIENCE: Duration = Duration::from_secs(60);

fn demo_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("keytop-demo-")))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn signal_ends_the_demo_cleanly(signal: &str) {
    let sandbox = tempfile::tempdir().unwrap();
    let tmp = sandbox.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let pair = native_pty_system().openpty(PtySize { rows: 30, cols: 100, pixel_width: 0, pixel_height: 0 }).unwrap();
    let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_keytop"));
    command.arg("--demo");
    command.env_clear();
    let path = |name: &str| sandbox.path().join(name).display().to_string();
    for (name, value) in [
        ("TMPDIR", tmp.display().to_string()),
        ("XDG_CONFIG_HOME", path("config")),
        ("XDG_STATE_HOME", path("state")),
        ("XDG_DATA_HOME", path("data")),
        ("KEYTOP_ACTOR", "signal-test".into()),
        ("TERM", "xterm-256color".into()),
    ] {
        command.env(name, value);
    }
    let mut child = pair.slave.spawn_command(command).unwrap();
    drop(pair.slave);
    let output = Arc::new(Mutex::new((vt100::Parser::new(30, 100, 0), Vec::new())));
    let mut reader = pair.master.try_clone_reader().unwrap();
    let shared = Arc::clone(&output);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(read) = reader.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let mut output = shared.lock().unwrap();
            output.0.process(&buffer[..read]);
            output.1.extend_from_slice(&buffer[..read]);
        }
    });

    let deadline = Instant::now() + PATIENCE;
    while !output.lock().unwrap().0.screen().contents().contains("▶ ") {
        let screen = output.lock().unwrap().0.screen().contents();
        assert!(Instant::now() < deadline, "the demo never showed its keys; the screen:\n{screen}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(demo_dirs(&tmp).len(), 1, "the demo's database directory exists while it runs");
    let screen = output.lock().unwrap().0.screen().contents();
    assert!(screen.contains("│ live │"), "the demo watches its database for changes; the screen:\n{screen}");
    let restored_before = output.lock().unwrap().1.len();

    let pid = child.process_id().expect("a pid").to_string();
    let status = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
    let deadline = Instant::now() + PATIENCE;
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "keytop did not quit on {signal}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "keytop quits on {signal} as on q: {exit:?}");
    assert!(demo_dirs(&tmp).is_empty(), "the demo's directory is removed on {signal}: {:?}", demo_dirs(&tmp));

    // The reader may still be draining the last bytes.
    let deadline = Instant::now() + Duration::from_secs(5);
    let restore: [&[u8]; 3] = [b"\x1b[?2004l", b"\x1b[?1049l", b"\x1b[?25h"];
    loop {
        let after = output.lock().unwrap().1[restored_before..].to_vec();
        if restore.iter().all(|sequence| contains(&after, sequence)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {signal} the terminal got no restore sequences (paste off, main screen, cursor shown): {:?}",
            String::from_utf8_lossy(&after)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_quits_the_demo_like_q() {
    signal_ends_the_demo_cleanly("-TERM");
}

#[test]
fn sighup_quits_the_demo_like_q() {
    signal_ends_the_demo_cleanly("-HUP");
}
