//! Plain HTTP requests on the WebSocket port: `/health`, `/metrics`, and a web client's files:
//! the built-in client ([`super::web_client`]) or, with `--static DIR`, a directory. Everything
//! else gets `400` (PROTOCOL.md §1.3), as with `--no-web-client` and no `--static`. Each response is built
//! whole and written by the connection's closing phase, which never blocks the loop; files are
//! therefore capped at [`MAX_FILE_BYTES`] (larger ones are refused with a log line).
//!
//! Static paths are percent-decoded, split into segments, and refused when a segment is `..`,
//! `.`, hidden (starts with `.`), or holds a backslash or NUL; the resolved file is
//! canonicalized and must still lie inside the canonical root, so symlinks cannot escape it.

use super::web_client::WebClient;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;
use tungstenite::handshake::server::Request;

/// Largest static file served; the whole file is held in memory while it is sent.
pub(super) const MAX_FILE_BYTES: u64 = 8 << 20;

/// The static root, canonicalized once at startup.
pub(super) struct StaticRoot(PathBuf);

impl StaticRoot {
    pub(super) fn open(dir: &Path) -> io::Result<StaticRoot> {
        let root = fs::canonicalize(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("static directory {}: {e}", dir.display())))?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a directory", root.display())));
        }
        Ok(StaticRoot(root))
    }
}

/// Where the web client's files come from.
pub(super) enum Site {
    /// `--static DIR`.
    Directory(StaticRoot),
    /// The client compiled into the binary.
    BuiltIn(WebClient),
}

/// The answer to a GET or HEAD from the site, or `None` when there is none (the caller
/// answers `400`).
pub(super) fn serve_site(site: Option<&Site>, request: &Request, head_only: bool) -> Option<Vec<u8>> {
    match site? {
        Site::Directory(root) => Some(serve_static(root, request, head_only)),
        Site::BuiltIn(client) => {
            let file = client.file(request.uri().path());
            Some(cached_response(file.body, &file.etag, None, file.content_type, request, head_only))
        }
    }
}

/// A response: status and the complete bytes to write.
pub(super) fn response(status: u16, content_type: &str, extra: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn plain(status: u16, head_only: bool) -> Vec<u8> {
    let body = format!("{status} {}\n", reason(status));
    response(status, "text/plain; charset=utf-8", "", body.as_bytes(), head_only)
}

/// The answer to a GET or HEAD from the static directory.
fn serve_static(root: &StaticRoot, request: &Request, head_only: bool) -> Vec<u8> {
    let Some(segments) = decode_path(request.uri().path()) else {
        return plain(400, head_only);
    };
    let Some(file) = resolve(&root.0, &segments) else {
        return plain(404, head_only);
    };
    file_response(&file, request, head_only)
}

/// Percent-decodes a path and splits it into segments; `None` for anything unsafe.
fn decode_path(path: &str) -> Option<Vec<String>> {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    let text = String::from_utf8(decoded).ok()?;
    let mut segments = Vec::new();
    for segment in text.split('/').filter(|s| !s.is_empty()) {
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
        segments.push(segment.to_string());
    }
    Some(segments)
}

/// The file a path names: the file itself, a directory's index.html, or the root index.html
/// for a missing path without an extension (the client takes the room from the page path).
fn resolve(root: &Path, segments: &[String]) -> Option<PathBuf> {
    let mut path = root.to_path_buf();
    path.extend(segments);
    let has_extension = segments.last().is_some_and(|s| s.contains('.'));
    let candidate = if path.is_dir() {
        path.join("index.html")
    } else if path.is_file() || has_extension {
        path
    } else {
        root.join("index.html")
    };
    let real = fs::canonicalize(&candidate).ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

fn file_response(path: &Path, request: &Request, head_only: bool) -> Vec<u8> {
    let Ok(meta) = fs::metadata(path) else { return plain(404, head_only) };
    if meta.len() > MAX_FILE_BYTES {
        log::warn!("{} is larger than {MAX_FILE_BYTES} bytes; not served", path.display());
        return plain(404, head_only);
    }
    let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    let etag = format!("\"{:x}-{:x}\"", meta.len(), modified);
    match fs::read(path) {
        Ok(body) => cached_response(&body, &etag, Some(&http_date(modified)), mime_type(path), request, head_only),
        Err(e) => {
            log::warn!("cannot read {}: {e}", path.display());
            plain(404, head_only)
        }
    }
}

/// A file's `200`, or `304` when the request's validators match: `ETag` (and `Last-Modified`
/// when known) plus `Cache-Control` (pages are revalidated each time, other files kept an hour).
fn cached_response(
    body: &[u8],
    etag: &str,
    last_modified: Option<&str>,
    content_type: &str,
    request: &Request,
    head_only: bool,
) -> Vec<u8> {
    let is_page = content_type.starts_with("text/html");
    let cache = if is_page { "no-cache" } else { "public, max-age=3600" };
    let mut headers = format!("ETag: {etag}\r\n");
    if let Some(date) = last_modified {
        headers.push_str(&format!("Last-Modified: {date}\r\n"));
    }
    headers.push_str(&format!("Cache-Control: {cache}\r\n"));
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let fresh = match header("if-none-match") {
        Some(tags) => tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"),
        None => last_modified.is_some() && header("if-modified-since") == last_modified,
    };
    if fresh {
        let mut out = response(304, content_type, &headers, b"", true);
        // A 304 carries no body and no length of one.
        if let Some(at) = find(&out, b"Content-Length: 0\r\n") {
            out.drain(at..at + "Content-Length: 0\r\n".len());
        }
        return out;
    }
    response(200, content_type, &headers, body, head_only)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Type for a file name's extension.
pub(super) fn mime_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7) for seconds since the Unix epoch.
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(decode_path("/a/b.js"), Some(vec!["a".to_string(), "b.js".to_string()]));
        assert_eq!(decode_path("/my%20room"), Some(vec!["my room".to_string()]));
        for bad in
            ["/../etc/passwd", "/a/%2e%2e/b", "/%2E%2E%2Fetc", "/.git/config", "/a\\..\\b", "/%00", "/%zz", "/%ff"]
        {
            assert_eq!(decode_path(bad), None, "{bad}");
        }
    }
}
