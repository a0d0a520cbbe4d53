//! The cluster's deployment files (docs/cluster.md, "Running it"), checked without a container
//! engine: the compose file runs NATS with JetStream on a volume and three nodes that share one
//! salt and NATS under names of their own and trust only nginx; nginx balances over exactly
//! those nodes, and `nginx -t` accepts its site (when nginx is installed).

use serde_yaml::Value;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn compose() -> Value {
    let mut compose: Value =
        serde_yaml::from_str(&read("deploy/cluster-compose.yaml")).expect("deploy/cluster-compose.yaml is YAML");
    compose.apply_merge().expect("its merge keys resolve");
    compose
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is a string: {value:?}"))
}

/// The nodes: services whose environment names a NATS server.
fn nodes(compose: &Value) -> Vec<(String, Value)> {
    let services = compose["services"].as_mapping().expect("services");
    services
        .iter()
        .filter(|(_, s)| s["environment"].get("MPPD_NATS").is_some())
        .map(|(name, s)| (text(name, "a service name").to_string(), s.clone()))
        .collect()
}

#[test]
fn three_nodes_share_nats_and_the_salt_under_names_of_their_own() {
    let compose = compose();
    let nats = &compose["services"]["nats"];
    let command: Vec<&str> = nats["command"].as_sequence().expect("a command").iter().map(|c| text(c, "arg")).collect();
    assert!(command.contains(&"-js"), "JetStream is on: {command:?}");
    assert!(nats["volumes"].as_sequence().is_some_and(|v| !v.is_empty()), "NATS keeps its store on a volume");
    let nats_ip = text(&nats["networks"]["mppd"]["ipv4_address"], "the NATS address");
    let nginx_ip = text(&compose["services"]["nginx"]["networks"]["mppd"]["ipv4_address"], "nginx's address");

    let nodes = nodes(&compose);
    assert_eq!(nodes.len(), 3, "three nodes");
    let mut names = BTreeSet::new();
    let mut salts = BTreeSet::new();
    for (service, node) in &nodes {
        let env = &node["environment"];
        assert_eq!(text(&env["MPPD_NATS"], "MPPD_NATS"), format!("nats://{nats_ip}:4222"), "{service}");
        assert_eq!(text(&env["MPPD_TRUSTED_PROXY"], "MPPD_TRUSTED_PROXY"), nginx_ip, "{service} trusts nginx only");
        names.insert(text(&env["MPPD_NODE"], "MPPD_NODE").to_string());
        salts.insert(text(&env["MPPD_SALT"], "MPPD_SALT").to_string());
        assert!(node["volumes"].as_sequence().is_some_and(|v| !v.is_empty()), "{service} keeps its data");
    }
    assert_eq!(names.len(), 3, "every node has a name of its own: {names:?}");
    assert_eq!(salts.len(), 1, "one salt for the site: {salts:?}");
}

#[test]
fn nginx_balances_over_exactly_the_nodes() {
    let compose = compose();
    let mut node_addrs: BTreeSet<String> = nodes(&compose)
        .iter()
        .map(|(_, node)| format!("{}:8080", text(&node["networks"]["mppd"]["ipv4_address"], "a node's address")))
        .collect();
    let site = read("deploy/nginx-cluster.conf");
    let upstream: BTreeSet<String> = site
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("upstream "))
        .take_while(|l| l.trim() != "}")
        .filter_map(|l| l.trim().strip_prefix("server "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|addr| addr.trim_end_matches(';').to_string())
        .collect();
    assert_eq!(upstream, std::mem::take(&mut node_addrs), "the upstream lists the nodes");
    let mount = format!("{:?}", compose["services"]["nginx"]["volumes"]);
    assert!(mount.contains("./nginx-cluster.conf"), "nginx runs the shipped site: {mount}");

    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| Path::new(p).is_file());
    let Some(nginx) = nginx else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: nginx -t of deploy/nginx-cluster.conf: nginx is not installed");
        return;
    };
    // The site as an `http` block of a minimal configuration (upstream addresses as shipped).
    let dir = std::env::temp_dir().join(format!("mppd-nginx-cluster-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("a temporary directory");
    let main = dir.join("nginx.conf");
    let conf = format!(
        "pid {}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\naccess_log off;\n{}\n}}\n",
        dir.display(),
        site
    );
    fs::write(&main, conf).expect("write the configuration");
    let output = Command::new(nginx).arg("-t").arg("-c").arg(&main).output().expect("run nginx -t");
    let _ = fs::remove_dir_all(&dir);
    assert!(output.status.success(), "nginx -t: {}", String::from_utf8_lossy(&output.stderr));
}
