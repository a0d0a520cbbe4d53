//! Plain HTTP on the WebSocket port over real sockets: `/health`, `/metrics` (values follow
//! what clients do), static files (types, caching, room paths, traversal refused), and `400`
//! for everything else without a web client (`--no-web-client`, no `--static`).

mod common;

use common::{Client, TestServer, http_exchange, test_config};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
}

fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let text = http_exchange(addr, raw);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split_once("\r\n\r\n").map_or(response, |(h, _)| h);
    head.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The value of an unlabelled metric, or of one line `name{labels}`.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn health_reports_connections_and_rooms() {
    let server = TestServer::new();
    let (status, text) = get(server.addr(), "/health");
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&text, "Content-Type"), Some("application/json"));
    let v: Value = serde_json::from_str(body(&text)).expect("JSON");
    assert_eq!((v["status"].as_str(), v["connections"].as_u64(), v["rooms"].as_u64()), (Some("ok"), Some(0), Some(0)));
    assert_eq!(v["version"], mppd::VERSION);
    assert!(v["uptime_s"].is_u64());

    let mut client = Client::connect(server.addr());
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": "lobby"})]);
    client.expect_message("ch");
    let v: Value = serde_json::from_str(body(&get(server.addr(), "/health?x=1").1)).expect("JSON");
    assert_eq!(
        (v["connections"].as_u64(), v["rooms"].as_u64(), v["participants"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    // HEAD: the same head, no body.
    let (status, text) = request(server.addr(), "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body(&text).is_empty(), "{text}");
}

#[test]
fn metrics_follow_clients_and_their_messages() {
    let server = TestServer::start(mppd::Config { web_client: false, ..test_config() });
    let before = get(server.addr(), "/metrics").1;
    assert!(header(&before, "Content-Type").is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    assert_eq!(metric(&before, "mppd_connections_open"), 0);
    let mut client = Client::connect(server.addr());
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": "lobby"})]);
    client.expect_message("ch");
    client.send(&[json!({"m": "n", "t": 1, "n": [{"n": "a1", "v": 0.5}]})]);
    client.send(&[json!({"m": "t", "e": 1})]);
    client.expect_message("t");
    let after = get(server.addr(), "/metrics").1;
    assert_eq!(metric(&after, "mppd_connections_open"), 1, "{after}");
    assert_eq!(metric(&after, "mppd_rooms"), 1);
    assert_eq!(metric(&after, "mppd_participants"), 1);
    assert_eq!(metric(&after, "mppd_messages_in_total{type=\"hi\"}"), 1);
    assert_eq!(metric(&after, "mppd_messages_in_total{type=\"n\"}"), 1);
    // WebSocket connections and plain HTTP requests are counted apart; sockets count both.
    assert_eq!(metric(&after, "mppd_connections_total"), 1, "one WebSocket: {after}");
    assert_eq!(metric(&after, "mppd_http_requests_total"), 2, "the two /metrics requests: {after}");
    assert_eq!(metric(&after, "mppd_sockets_accepted_total"), 3, "{after}");
    assert!(metric(&after, "mppd_frames_out_total") >= 3);
    assert!(metric(&after, "mppd_bytes_in_total") > 0 && metric(&after, "mppd_bytes_out_total") > 0);
    assert!(metric(&after, "mppd_loop_turn_seconds_count") > metric(&before, "mppd_loop_turn_seconds_count"));
    assert_eq!(metric(&after, "mppd_http_responses_total{status=\"200\"}"), 1, "the first /metrics");
    get(server.addr(), "/nope");
    let last = get(server.addr(), "/metrics").1;
    assert_eq!(metric(&last, "mppd_http_responses_total{status=\"400\"}"), 1, "{last}");
}

#[test]
fn without_a_web_client_other_paths_get_400() {
    let server = TestServer::start(mppd::Config { web_client: false, ..test_config() });
    for path in ["/", "/index.html", "/some%20room"] {
        assert_eq!(get(server.addr(), path).0, 400, "{path}");
    }
}

/// A client directory with a page, a script, a sound, a subfolder, and a secret beside it
/// (reached only by escaping the root).
fn site() -> PathBuf {
    // One directory per call: tests run in parallel and each removes its own.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!("mppd-static-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("client");
    std::fs::create_dir_all(root.join("sounds")).unwrap();
    std::fs::write(root.join("index.html"), "<!doctype html><title>piano</title>").unwrap();
    std::fs::write(root.join("script.js"), "console.log(1)").unwrap();
    std::fs::write(root.join("sounds/a1.mp3"), [0xffu8, 0xfb, 0x90]).unwrap();
    std::fs::write(root.join(".env"), "hidden").unwrap();
    std::fs::write(base.join("secret.txt"), "secret").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape.txt")).unwrap();
    root
}

#[test]
fn static_files_with_types_caching_and_room_paths() {
    let root = site();
    let server = TestServer::start(mppd::Config { static_dir: Some(root.clone()), ..test_config() });
    let addr = server.addr();
    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert_eq!(header(&page, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&page, "Cache-Control"), Some("no-cache"));
    assert!(body(&page).contains("piano"));
    // A room path (no extension) is the page too: the client reads the room from it.
    assert_eq!(body(&get(addr, "/My%20Room").1), body(&page));
    let (status, js) = get(addr, "/script.js");
    assert_eq!(status, 200);
    assert_eq!(header(&js, "Content-Type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(header(&js, "Cache-Control"), Some("public, max-age=3600"));
    assert_eq!(header(&get(addr, "/sounds/a1.mp3").1, "Content-Type"), Some("audio/mpeg"));
    // Revalidation.
    let etag = header(&js, "ETag").expect("an ETag").to_string();
    let (status, not_modified) = request(addr, &format!("GET /script.js HTTP/1.1\r\nIf-None-Match: {etag}\r\n\r\n"));
    assert_eq!(status, 304, "{not_modified}");
    assert!(body(&not_modified).is_empty());
    let last_modified = header(&js, "Last-Modified").expect("Last-Modified").to_string();
    let since = format!("GET /script.js HTTP/1.1\r\nIf-Modified-Since: {last_modified}\r\n\r\n");
    assert_eq!(request(addr, &since).0, 304);
    // HEAD keeps the length and drops the body.
    let (status, head) = request(addr, "HEAD /script.js HTTP/1.1\r\n\r\n");
    assert_eq!((status, header(&head, "Content-Length")), (200, Some("14")));
    assert!(body(&head).is_empty());
    // Missing files with an extension.
    assert_eq!(get(addr, "/missing.js").0, 404);
    // Health and metrics still win over the files.
    assert_eq!(header(&get(addr, "/health").1, "Content-Type"), Some("application/json"));
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn static_traversal_is_refused() {
    let root = site();
    let server = TestServer::start(mppd::Config { static_dir: Some(root.clone()), ..test_config() });
    let addr = server.addr();
    for path in [
        "/../secret.txt",
        "/sounds/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/.env",
        "/..%5csecret.txt",
    ] {
        let (status, text) = get(addr, path);
        assert!(matches!(status, 400 | 404), "{path}: {status}");
        assert!(!text.contains("secret"), "{path}: {text}");
    }
    let (status, text) = get(addr, "/escape.txt");
    assert_eq!(status, 404, "a symlink out of the root: {text}");
    let _ = std::fs::remove_dir_all(root.parent().unwrap());
}
