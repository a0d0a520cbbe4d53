//! The monitoring kit in `deploy/monitoring/`: the Prometheus alert rules and the Grafana
//! dashboard parse, and every series they query is one the real binary's `/metrics` serves
//! (scraped from a running server with a data directory, so the save metrics are there too).
//! `up` is the one series Prometheus makes itself.

mod common;
mod process;

use common::http_exchange;
use process::{Mppd, temp_dir};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Words of PromQL and label names the queries use; anything else must be a served series.
const PROMQL_WORDS: &[&str] = &[
    "rate",
    "increase",
    "sum",
    "by",
    "histogram_quantile",
    "time",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "without",
    "bool",
    "label_values",
    "le",
    "type",
    "reason",
    "code",
    "status",
    "job",
    "instance",
    "version",
    "up",
];

/// Series names in the `/metrics` of a running server: sample names and `# TYPE` names.
fn served_names() -> BTreeSet<String> {
    let data = temp_dir("monitoring");
    let server = Mppd::start(&["--data-dir", data.to_str().expect("a UTF-8 path")]);
    let answer = http_exchange(server.addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        names.extend(name.filter(|n| !n.is_empty()).map(String::from));
    }
    let _ = fs::remove_dir_all(&data);
    assert!(names.len() > 30, "{body}");
    names
}

/// The identifiers of a PromQL expression outside strings, label matchers and ranges.
fn identifiers(expr: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = (0, 0, false); // braces, brackets, in a string
    for c in expr.chars() {
        match c {
            '"' => depth.2 = !depth.2,
            '{' if !depth.2 => depth.0 += 1,
            '}' if !depth.2 => depth.0 -= 1,
            '[' if !depth.2 => depth.1 += 1,
            ']' if !depth.2 => depth.1 -= 1,
            _ if depth == (0, 0, false) => plain.push(c),
            _ => {}
        }
        if matches!(c, '"' | '{' | '}' | '[' | ']') {
            plain.push(' ');
        }
    }
    plain
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_'))
        .map(String::from)
        .collect()
}

fn check(source: &str, exprs: &[String], served: &BTreeSet<String>) {
    assert!(!exprs.is_empty(), "{source} has no queries");
    for expr in exprs {
        for word in identifiers(expr) {
            assert!(
                served.contains(&word) || PROMQL_WORDS.contains(&word.as_str()),
                "{source}: {word:?} in {expr:?} is not a series /metrics serves (served: {served:?})"
            );
        }
    }
}

/// Every string under a key named `key`, anywhere in `value`.
fn strings_under(value: &Value, key: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(v, key, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| strings_under(v, key, out)),
        _ => {}
    }
}

#[test]
fn alerts_and_dashboard_query_only_served_metrics() {
    let served = served_names();
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        "mppd_build_info",
        "mppd_state_save_failures_total",
        "mppd_state_last_save_timestamp_seconds",
        "mppd_http_requests_total",
        "mppd_connections_total",
    ] {
        assert!(served.contains(name), "/metrics lacks {name}");
    }

    let text = fs::read_to_string(Path::new(ROOT).join("deploy/monitoring/alerts.yml")).expect("read alerts.yml");
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("alerts.yml is YAML");
    let mut exprs = Vec::new();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            alerts.push(rule["alert"].as_str().expect("an alert name").to_string());
            exprs.push(rule["expr"].as_str().expect("an expr").to_string());
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{rule:?}");
        }
    }
    for needed in ["MppdDown", "MppdStateSaveFailing", "MppdConnectionsNearCap", "MppdSlowReaderDrops"] {
        assert!(alerts.iter().any(|a| a == needed), "no {needed} alert");
    }
    check("alerts.yml", &exprs, &served);

    let text = fs::read_to_string(Path::new(ROOT).join("deploy/monitoring/grafana-dashboard.json"))
        .expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    strings_under(&dashboard["panels"], "expr", &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut queries = Vec::new();
    strings_under(&dashboard["templating"], "query", &mut queries);
    exprs.extend(queries.into_iter().filter(|q| q.starts_with("label_values")));
    check("grafana-dashboard.json", &exprs, &served);
}

#[test]
fn identifiers_skip_labels_strings_and_ranges() {
    let words = identifiers(r#"sum by (code) (rate(mppd_closes_total{code="4003",job=~"a|b"}[5m])) > 0.1"#);
    assert_eq!(words, ["sum", "by", "code", "rate", "mppd_closes_total"]);
}

/// `promtool check rules` where Prometheus's tool is installed (Debian package prometheus; not
/// installed by `.ci/run`, for its size), else a SKIPPED line.
#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = Path::new(ROOT).join("deploy/monitoring/alerts.yml");
    match std::process::Command::new("promtool").arg("check").arg("rules").arg(&rules).output() {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success() && text.contains("SUCCESS"), "{text}");
        }
        Err(_) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIPPED: promtool: not installed (Debian package prometheus)");
        }
    }
}
