//! A build on the board itself (aarch64 or armv7 Raspberry Pi OS) is a native build: cargo
//! applies a `[target.<triple>]` runner or linker from any `.cargo/config*` it reads to native
//! builds of that triple too, so a qemu runner there makes `cargo run` and `cargo test` on a Pi
//! try to start qemu. The cross settings live in `scripts/cross-config.toml`, which only
//! `scripts/cross-test.sh` passes to cargo (`--config`); these tests keep it that way.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ARM_TRIPLES: [&str; 2] = ["aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf"];

/// Every cargo configuration file inside the repository (`.cargo/config`, `.cargo/config.toml`
/// in any directory a build may start from), build output and git data left out.
fn cargo_configs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if !path.is_dir() || name == "target" || name == ".git" || name == "node_modules" {
            continue;
        }
        if name == ".cargo" {
            for file in ["config", "config.toml"] {
                if path.join(file).is_file() {
                    found.push(path.join(file));
                }
            }
        }
        cargo_configs(&path, found);
    }
}

/// The keys of a TOML file with their table, as `table.key` (enough for cargo configuration:
/// `[target.x]` tables with `runner = ...` lines, or dotted keys at the top level).
fn keys(text: &str) -> Vec<String> {
    let mut table = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            table = header.trim_start_matches('[').trim_end_matches(']').trim().replace(['"', '\''], "");
            continue;
        }
        if let Some((key, _)) = line.split_once('=') {
            let key = key.trim().replace(['"', '\''], "");
            out.push(if table.is_empty() { key } else { format!("{table}.{key}") });
        }
    }
    out
}

#[test]
fn no_repository_cargo_config_sets_a_runner_or_linker() {
    let mut configs = Vec::new();
    cargo_configs(Path::new(ROOT), &mut configs);
    for config in &configs {
        let text = fs::read_to_string(config).expect("read a cargo config");
        for key in keys(&text) {
            let is_target_key = key.starts_with("target.") || key.starts_with("build.");
            assert!(
                !(is_target_key && (key.ends_with(".runner") || key.ends_with(".linker") || key == "build.target")),
                "{} sets {key}: it would apply to a native build on a board; put cross settings in \
                 scripts/cross-config.toml",
                config.display()
            );
        }
    }
}

#[test]
fn the_cross_config_is_complete_and_only_passed_by_the_cross_script() {
    let cross = fs::read_to_string(Path::new(ROOT).join("scripts/cross-config.toml")).expect("read the cross config");
    let keys = keys(&cross);
    for triple in ARM_TRIPLES.iter().chain(&["aarch64-unknown-linux-musl"]) {
        for what in ["linker", "runner"] {
            let key = format!("target.{triple}.{what}");
            assert!(keys.contains(&key), "scripts/cross-config.toml lacks {key}");
        }
    }
    let script = fs::read_to_string(Path::new(ROOT).join("scripts/cross-test.sh")).expect("read the cross script");
    assert!(script.contains("CROSS_CONFIG=scripts/cross-config.toml"), "the cross script names its config");
    let cross_cargo_lines: Vec<&str> =
        script.lines().filter(|l| l.contains("cargo ") && l.contains("--target \"$t\"")).collect();
    assert!(cross_cargo_lines.len() >= 3, "the cross script builds and tests with --target: {cross_cargo_lines:?}");
    for line in cross_cargo_lines {
        assert!(line.contains("--config \"$CROSS_CONFIG\""), "a cross cargo command without the cross config: {line}");
    }
}
