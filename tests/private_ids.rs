//! User ids are private by default, over the real binary: with no salt configured each
//! installation makes its own at the first start (`DATA_DIR/salt`, mode 0600) and keeps it, so
//! two installations give one address different ids and a restart keeps them; a configured salt
//! wins; without a data directory every process has its own salt and says so. The salt itself
//! never shows in the log or in `--print-config`.

mod common;
mod process;

use common::Client;
use mppd::core::identity_for_address;
use process::{Mppd, connect_from, mppd_command, temp_dir};
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

/// The user id the server gives a client from 127.0.0.7.
fn id_of_client(server: &Mppd) -> String {
    let mut client = Client::handshake(connect_from([127, 0, 0, 7], server.addr), server.addr, "/");
    client.send(&[json!({"m": "hi"})]);
    let hi = client.expect_message("hi");
    hi["u"]["_id"].as_str().expect("an id").to_string()
}

fn start(data: &Path) -> Mppd {
    Mppd::start(&["--data-dir", data.to_str().expect("a UTF-8 path")])
}

#[test]
fn each_installation_makes_its_own_salt_and_keeps_it() {
    let root = temp_dir("private-ids");
    let (a, b) = (root.join("a"), root.join("b"));

    let mut first = start(&a);
    let startup = first.expect_log("starting:");
    let id_a = id_of_client(&first);
    let salt_file = a.join("salt");
    assert!(startup.contains(&format!("id salt {} (created now)", salt_file.display())), "{startup}");
    let salt = fs::read_to_string(&salt_file).expect("the salt file").trim().to_string();
    assert!(salt.len() >= 32, "a long random salt: {salt:?}");
    assert_eq!(fs::metadata(&salt_file).expect("stat").permissions().mode() & 0o777, 0o600, "only the owner reads it");
    assert_ne!(id_a, identity_for_address("", "127.0.0.7".parse().expect("an ip"), None).id.to_hex());
    assert_eq!(id_a, identity_for_address(&salt, "127.0.0.7".parse().expect("an ip"), None).id.to_hex());
    first.signal("TERM");
    assert!(first.wait_exit().success());
    assert!(!first.drain_log().iter().any(|line| line.contains(&salt)), "the salt is never logged");

    let other = start(&b);
    assert_ne!(id_of_client(&other), id_a, "another installation gives the same address another id");

    let mut again = start(&a);
    let startup = again.expect_log("starting:");
    assert!(startup.contains(&format!("id salt {}", salt_file.display())) && !startup.contains("created"), "{startup}");
    assert_eq!(id_of_client(&again), id_a, "a restart keeps the ids");
    assert_eq!(fs::read_to_string(&salt_file).expect("the salt file").trim(), salt, "the file is reused as it is");

    // A configured salt wins over the file (moving an installation with its ids).
    let configured = Mppd::start(&["--data-dir", a.to_str().expect("a UTF-8 path"), "--salt", "moved-here"]);
    assert_eq!(
        id_of_client(&configured),
        identity_for_address("moved-here", "127.0.0.7".parse().expect("an ip"), None).id.to_hex()
    );
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn without_a_data_directory_each_process_has_its_own_salt() {
    let mut one = Mppd::start(&["--data-dir", ""]);
    let startup = one.expect_log("starting:");
    assert!(startup.contains("random for this process") && startup.contains("change on restart"), "{startup}");
    let two = Mppd::start(&["--data-dir", ""]);
    assert_ne!(id_of_client(&one), id_of_client(&two));
}

#[test]
fn print_config_says_where_the_salt_comes_from_and_never_shows_it() {
    let root = temp_dir("print-config-salt");
    let print = |args: &[&str]| -> Value {
        let output = mppd_command().args(args).arg("--print-config").stdin(Stdio::null()).output().expect("run");
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).expect("JSON")
    };
    let data = root.to_str().expect("a UTF-8 path");
    let config = print(&["--data-dir", data]);
    assert_eq!(config["id_salt_source"], format!("{data}/salt (created at the first start)"));
    assert!(!root.join("salt").exists(), "--print-config creates nothing");
    let config = print(&["--data-dir", data, "--salt", "very-secret"]);
    assert_eq!(config["id_salt_source"], "configured (--salt or MPPD_SALT)");
    assert!(!config.to_string().contains("very-secret"), "{config}");
    let _ = fs::remove_dir_all(&root);
}
