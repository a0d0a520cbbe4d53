//! The replay suite: every recording `tests/replay/<name>.jsonl` is replayed and its outputs are
//! compared with `tests/replay/<name>.expected.jsonl`, line by line.
//!
//! After an intended change of behaviour, rewrite the expected files with
//! `BLESS=1 cargo test --test replay`, then read the diff (`git diff tests/replay`) before
//! committing it: the expected files are the reviewed record of what clients receive.

mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/replay");

/// The recordings of the suite, by name.
fn recordings() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(SUITE)
        .expect("read tests/replay")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".jsonl") && !name.ends_with(".expected.jsonl")
        })
        .collect();
    paths.sort();
    paths
}

fn expected_path(recording: &Path) -> PathBuf {
    recording.with_extension("expected.jsonl")
}

/// Replays `text` in this process and returns what it printed.
fn replay(text: &str) -> String {
    let mut out = Vec::new();
    mppd::record::replay(text.as_bytes(), false, &mut out).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8(out).expect("outputs are UTF-8")
}

/// The input line (with its line number) that produced output number `index` (0-based): found
/// by replaying ever longer prefixes of the recording.
fn producing_input(text: &str, index: usize) -> Option<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut prefix = String::new();
    for (number, line) in lines.iter().enumerate() {
        prefix.push_str(line);
        prefix.push('\n');
        let is_input = number > 0 && line.trim_start().starts_with('{');
        if is_input && replay(&prefix).lines().count() > index {
            return Some((number + 1, line.to_string()));
        }
    }
    None
}

/// A readable account of the first difference between expected and replayed outputs.
fn describe_mismatch(name: &str, recording: &str, expected: &str, got: &str) -> String {
    let (expected, got): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let index = expected.iter().zip(&got).position(|(e, g)| e != g).unwrap_or(expected.len().min(got.len()));
    let mut text = format!("{name}: outputs differ at output line {}\n", index + 1);
    let _ = writeln!(text, "  expected: {}", expected.get(index).unwrap_or(&"(no more outputs)"));
    let _ = writeln!(text, "  got:      {}", got.get(index).unwrap_or(&"(no more outputs)"));
    let producer = if got.len() > index { producing_input(recording, index) } else { None };
    match producer {
        Some((line, input)) => {
            let _ = writeln!(text, "  produced by the input at {name}.jsonl:{line}: {input}");
        }
        None => {
            let _ = writeln!(text, "  (an output the replay no longer produces)");
        }
    }
    let _ = writeln!(text, "  ({} outputs expected, {} replayed)", expected.len(), got.len());
    text
}

#[test]
fn recorded_sessions_replay_to_their_expected_outputs() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| !v.is_empty() && v != "0");
    let recordings = recordings();
    assert!(recordings.len() >= 12, "the suite holds {} recordings, expected at least 12", recordings.len());
    let mut failures = Vec::new();
    for path in &recordings {
        let name = path.file_stem().and_then(|n| n.to_str()).expect("a UTF-8 file name").to_string();
        let recording = std::fs::read_to_string(path).expect("read a recording");
        let got = replay(&recording);
        assert_eq!(got, replay(&recording), "{name}: two replays in one process differ");
        assert!(!got.is_empty(), "{name}: the replay produced no output");
        let expected_file = expected_path(path);
        if bless {
            std::fs::write(&expected_file, &got).expect("write the expected outputs");
            continue;
        }
        match std::fs::read_to_string(&expected_file) {
            Ok(expected) if expected == got => {}
            Ok(expected) => failures.push(describe_mismatch(&name, &recording, &expected, &got)),
            Err(e) => failures.push(format!(
                "{name}: cannot read {} ({e}); create it with BLESS=1 cargo test --test replay",
                expected_file.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended: BLESS=1 cargo test --test replay, then review git diff tests/replay",
        failures.join("\n")
    );
}

/// `mppd replay` in separate processes prints exactly what the in-process replay printed, so no
/// hash order or clock of the process leaks into the outputs.
#[test]
fn separate_processes_print_the_same_outputs() {
    for path in recordings() {
        let recording = std::fs::read_to_string(&path).expect("read a recording");
        let in_process = replay(&recording);
        for _ in 0..2 {
            let output = process::mppd_command().arg("replay").arg(&path).output().expect("run mppd replay");
            assert!(output.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
            assert!(
                output.stdout == in_process.as_bytes(),
                "{}: the mppd replay process printed other outputs",
                path.display()
            );
        }
    }
}

#[test]
fn a_mismatch_names_the_input_that_produced_it() {
    let path = recordings().into_iter().find(|p| p.ends_with("join-and-leave.jsonl")).expect("join-and-leave");
    let recording = std::fs::read_to_string(&path).expect("read a recording");
    let got = replay(&recording);
    // Pretend the expected output of B's join lacked the "p" that A gets.
    let expected: String = got.lines().filter(|l| !l.contains(r#"\"m\":\"p\""#)).map(|l| format!("{l}\n")).collect();
    assert_ne!(expected, got);
    let report = describe_mismatch("join-and-leave", &recording, &expected, &got);
    assert!(report.contains(r#"\"m\":\"p\""#), "{report}");
    assert!(report.contains(r#""conn":2,"text":"[{\"m\":\"hi\"},{\"m\":\"ch\""#), "{report}");
}
