//! The documentation holds together: the README stays a short front page (at most 12 KB; the
//! detail lives in docs/), and every relative link in it and in docs/*.md points at a file that
//! exists.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn documents() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    let docs = fs::read_dir(Path::new(ROOT).join("docs")).expect("docs/");
    files.extend(docs.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "md")));
    files
}

/// The targets of `[text](target)` links.
fn links(text: &str) -> Vec<String> {
    text.split("](").skip(1).filter_map(|rest| rest.split(')').next()).map(|t| t.trim().to_string()).collect()
}

#[test]
fn readme_is_a_short_front_page() {
    let size = fs::metadata(Path::new(ROOT).join("README.md")).expect("README.md").len();
    assert!(size <= 12 * 1024, "README.md is {size} bytes; move detail to docs/");
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    for section in ["## Run", "## Test", "## Deploy", "## Options", "## Upgrade"] {
        assert!(readme.contains(&format!("\n{section}\n")), "README.md lacks {section}");
    }
}

#[test]
fn relative_links_resolve() {
    for file in documents() {
        let text = fs::read_to_string(&file).expect("read a document");
        let dir = file.parent().expect("a directory");
        for target in links(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap_or_default();
            assert!(dir.join(path).exists(), "{}: link to {target}, which does not exist", file.display());
        }
    }
}
