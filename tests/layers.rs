//! Calls go down only (DESIGN §4): the faces (`cli`, `tui`, and `serve`, which hosts the TUI over
//! SSH) call the layers below them, and no
//! module below them reaches back up. Checked on the source text, since Rust allows any module of
//! a crate to name any other.

use std::path::{Path, PathBuf};

/// The faces, which nothing else may name.
const FACES: [&str; 3] = ["cli", "tui", "serve"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("read a folder entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_below_the_faces_names_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let below_the_faces = files.iter().filter(|path| {
        let relative = path.strip_prefix(&src).expect("a file under src");
        let top = relative.components().next().and_then(|part| part.as_os_str().to_str()).unwrap_or_default();
        let top = top.trim_end_matches(".rs");
        !FACES.contains(&top) && !["main", "lib"].contains(&top)
    });
    let mut upward = Vec::new();
    for path in below_the_faces {
        let text = std::fs::read_to_string(path).expect("read a source file");
        for face in FACES {
            if text.contains(&format!("crate::{face}::")) || text.contains(&format!("crate::{face};")) {
                upward.push(format!("{} names crate::{face}", path.display()));
            }
        }
    }
    assert!(files.len() > 20, "the walk found the source files: {files:?}");
    assert!(upward.is_empty(), "calls must go down only:\n{}", upward.join("\n"));
}
