//! Helpers shared by the end-to-end tests (`mod common;` in each test file that uses them).
#![allow(dead_code)] // each test crate uses its own subset

use assert_cmd::Command;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Runs `fhe-shazam args…` and returns its stdout, failing the test with its stderr.
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> String {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    let output = Command::cargo_bin("fhe-shazam")
        .unwrap()
        .args(&args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// [`run`] with `--json`'s output parsed.
pub fn run_json<S: AsRef<OsStr>>(args: &[S]) -> serde_json::Value {
    serde_json::from_str(&run(args)).unwrap()
}

/// Every file below `dir` with its bytes, by relative path.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(dir).unwrap().to_path_buf();
            files.insert(rel, std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

/// Reads a `serve` child's log until its "listening on http://…" line and returns the URL;
/// the rest of the log is drained so the server never blocks on a full pipe.
pub fn listening_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_once("listening on ")
                .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_string())
        })
        .expect("server printed its address");
    std::thread::spawn(move || for _ in lines {});
    url
}
