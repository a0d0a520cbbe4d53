//! The built-in web client: the files of `web/`, compiled into the binary and served at `/` and
//! at every room path (`/<room name>`), unless `--static DIR` replaces them or `--no-web-client`
//! turns them off. A path naming one of the files gets it; any other path is a room, and gets
//! the page (the client reads the room name from its path). Nothing touches the file system, so
//! there is no path to refuse.

use super::http::mime_type;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Every file of `web/`, by name; the first is the page. A test checks that the list and the
/// directory agree.
const FILES: [(&str, &[u8]); 11] = [
    ("index.html", include_bytes!("../../web/index.html")),
    ("style.css", include_bytes!("../../web/style.css")),
    ("main.js", include_bytes!("../../web/main.js")),
    ("client.js", include_bytes!("../../web/client.js")),
    ("notes.mjs", include_bytes!("../../web/notes.mjs")),
    ("piano.js", include_bytes!("../../web/piano.js")),
    ("sound.js", include_bytes!("../../web/sound.js")),
    ("midi.mjs", include_bytes!("../../web/midi.mjs")),
    ("room.js", include_bytes!("../../web/room.js")),
    ("chat.js", include_bytes!("../../web/chat.js")),
    ("icon.svg", include_bytes!("../../web/icon.svg")),
];

/// One embedded file with what its responses need.
pub(super) struct File {
    pub(super) body: &'static [u8],
    pub(super) content_type: &'static str,
    /// A strong validator from the content, so a new build's files are fetched again.
    pub(super) etag: String,
}

/// The embedded files, their types and validators computed once at startup.
pub(super) struct WebClient {
    files: Vec<(&'static str, File)>,
}

impl WebClient {
    pub(super) fn new() -> WebClient {
        let files = FILES
            .iter()
            .map(|&(name, body)| {
                let digest = Sha256::digest(body);
                let etag = format!("\"{}\"", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
                (name, File { body, content_type: mime_type(Path::new(name)), etag })
            })
            .collect();
        WebClient { files }
    }

    /// The file a request path names, or the page for any other path.
    pub(super) fn file(&self, path: &str) -> &File {
        let name = path.strip_prefix('/').unwrap_or(path);
        let found = self.files.iter().find(|(n, _)| *n == name);
        &found.unwrap_or(&self.files[0]).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_web_is_embedded_and_the_whole_client_is_small() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("web/")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .filter(|name| !name.ends_with(".md"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
        let total: usize = FILES.iter().map(|(_, body)| body.len()).sum();
        assert!(total < 150 * 1024, "the web client is {total} bytes");
    }

    #[test]
    fn room_paths_get_the_page_and_file_paths_their_file() {
        let client = WebClient::new();
        let page = client.file("/");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert_eq!(client.file("/My%20room").etag, page.etag);
        assert_eq!(client.file("/test/awkward").etag, page.etag);
        let script = client.file("/main.js");
        assert_eq!(script.content_type, "text/javascript; charset=utf-8");
        assert_ne!(script.etag, page.etag);
        assert_eq!(client.file("/icon.svg").content_type, "image/svg+xml");
    }
}
