//! The built-in web client over the real binary: the page at `/` and at room paths, its files
//! with their types and cache headers, `--no-web-client` leaving a WebSocket-only server, and
//! `--static DIR` replacing the built-in files.

mod common;
mod process;

use common::{Client, http_exchange};
use process::{Mppd, temp_dir};
use serde_json::json;
use std::net::SocketAddr;

/// The status, head and body of `GET path` (with extra header lines).
fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let text = http_exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n"));
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_string(), body.to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

#[test]
fn the_page_is_served_at_the_root_and_at_room_paths() {
    let server = Mppd::start(&["--data-dir", ""]);
    let (status, head, page) = get(server.addr, "/", "");
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&head, "Cache-Control"), Some("no-cache"));
    assert!(page.contains("<script type=\"module\" src=\"/main.js\">"), "{page}");
    assert!(page.contains("id=\"piano\""));
    for room in ["/some-room", "/My%20room", "/test/awkward", "/lobby2?x=1"] {
        let (status, _, body) = get(server.addr, room, "");
        assert_eq!((status, body.as_str()), (200, page.as_str()), "{room}");
    }
    // The scripts and the style, each with its type, kept for an hour and revalidated by ETag.
    for (path, content_type) in [
        ("/main.js", "text/javascript; charset=utf-8"),
        ("/notes.mjs", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let (status, head, body) = get(server.addr, path, "");
        assert_eq!(status, 200, "{path}: {head}");
        assert_eq!(header(&head, "Content-Type"), Some(content_type), "{path}");
        assert_eq!(header(&head, "Cache-Control"), Some("public, max-age=3600"), "{path}");
        assert!(!body.is_empty() && body != page, "{path}");
        let etag = header(&head, "ETag").expect("an ETag");
        let (status, head, body) = get(server.addr, path, &format!("If-None-Match: {etag}\r\n"));
        assert_eq!((status, body.as_str()), (304, ""), "{path}: {head}");
    }
    // Health and metrics keep their routes, and every path still upgrades to the protocol.
    assert_eq!(header(&get(server.addr, "/health", "").1, "Content-Type"), Some("application/json"));
    let mut client = Client::connect(server.addr);
    client.send(&[json!({"m": "hi"}), json!({"m": "ch", "_id": "some-room"})]);
    assert_eq!(client.expect_message("ch")["ch"]["_id"], "some-room");
}

#[test]
fn no_web_client_leaves_a_websocket_only_server() {
    let server = Mppd::start(&["--data-dir", "", "--no-web-client"]);
    for path in ["/", "/some-room", "/main.js"] {
        let (status, head, _) = get(server.addr, path, "");
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{path}: {head}");
        assert_eq!(status, 400);
    }
    assert_eq!(get(server.addr, "/health", "").0, 200);
    let mut client = Client::connect(server.addr);
    client.send(&[json!({"m": "hi"})]);
    client.expect_message("hi");
}

#[test]
fn a_static_directory_replaces_the_built_in_client() {
    let dir = temp_dir("web-client-static");
    std::fs::write(dir.join("index.html"), "<!doctype html><title>another piano</title>").expect("write");
    let server = Mppd::start(&["--data-dir", "", "--static", dir.to_str().expect("a UTF-8 path")]);
    for room in ["/", "/some-room"] {
        let (status, _, body) = get(server.addr, room, "");
        assert_eq!((status, body.as_str()), (200, "<!doctype html><title>another piano</title>"), "{room}");
    }
    assert_eq!(get(server.addr, "/main.js", "").0, 404, "the built-in files are not there");
    let _ = std::fs::remove_dir_all(&dir);
}
