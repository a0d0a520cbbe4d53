//! The example nginx sites, `deploy/nginx-mppd.conf` and `deploy/nginx-mppd-tls.conf`, run by
//! the system's nginx in front of the real binary on loopback. Only the upstream address and the listen address of the example are
//! changed. A client connecting through nginx gets the user id of its own address when mppd
//! trusts the proxy (`--trusted-proxy 127.0.0.1`), the id of 127.0.0.1 when it does not, and
//! never the id of an address it names itself in `X-Forwarded-For`. `/health` and `/metrics`
//! answer through nginx; `/metrics` only to 127.0.0.1. The TLS site redirects to https://, answers
//! ACME challenges on port 80 and passes https:// and wss:// to mppd (self-signed certificate).
//!
//! Without nginx installed the tests print `SKIPPED: nginx: not installed` and pass; `.ci/run`
//! installs it.

mod common;
mod process;

use common::Client;
use mppd::core::identity_for_address;
use process::{Mppd, connect_from, temp_dir};
use serde_json::{Value, json};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;

const SALT: &str = "nginx-test-salt";

/// How long nginx gets to start listening, and a plain request to be answered.
const WAIT: Duration = Duration::from_secs(10);

/// The example site as shipped.
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx-mppd.conf");

/// The nginx binary: on the `PATH`, or where Debian puts it (`/usr/sbin` is often not on a
/// normal user's `PATH`).
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("nginx"))
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|candidate| candidate.is_file())
}

/// The nginx binary, or `None` after printing why the test is skipped. Written straight to
/// stderr so that the line shows even though the test harness captures `println!`.
fn nginx_or_skip() -> Option<PathBuf> {
    let found = nginx_binary();
    if found.is_none() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: nginx: not installed");
    }
    found
}

/// `text` with the single occurrence of `from` replaced; fails if the example no longer has
/// exactly one, so that a change to its shape is noticed here rather than silently untested.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let count = text.matches(from).count();
    assert_eq!(count, 1, "{EXAMPLE} should contain {from:?} exactly once, found {count}");
    text.replacen(from, to, 1)
}

/// The example site pointed at `upstream` and listening on `listen` only (its IPv6 listen line
/// is dropped: the test stays on 127.0.0.x).
fn site_config(upstream: SocketAddr, listen: SocketAddr) -> String {
    let example = fs::read_to_string(EXAMPLE).expect("read the example nginx site");
    let site = replace_once(&example, "server 127.0.0.1:8080;", &format!("server {upstream};"));
    let site = replace_once(&site, "listen 80;", &format!("listen {listen};"));
    site.lines().filter(|line| !line.trim_start().starts_with("listen [::]:")).collect::<Vec<_>>().join("\n")
}

/// What `nginx -V` says: its version and the modules left out of the build.
struct Build {
    /// `-e FILE` (error log before the configuration is read) exists since 1.19.5.
    has_error_log_flag: bool,
    without: Vec<String>,
}

fn nginx_build(nginx: &Path) -> Build {
    let output = Command::new(nginx).arg("-V").stdin(Stdio::null()).output().expect("run nginx -V");
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    let version: Vec<u32> = text
        .split("nginx/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|v| v.split('.').map(|part| part.parse().unwrap_or(0)).collect())
        .unwrap_or_default();
    let without = text.split_whitespace().filter(|arg| arg.starts_with("--without-")).map(String::from).collect();
    Build { has_error_log_flag: version >= vec![1, 19, 5], without }
}

/// The main configuration: one process in the foreground, every file it writes under `dir`,
/// and the (templated) example site included in `http`.
fn main_config(dir: &Path, build: &Build) -> String {
    let d = dir.display();
    let mut temp_paths = format!("client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n");
    for module in ["fastcgi", "uwsgi", "scgi"] {
        if !build.without.iter().any(|arg| arg == &format!("--without-http_{module}_module")) {
            temp_paths.push_str(&format!("    {module}_temp_path {d}/{module};\n"));
        }
    }
    format!(
        "daemon off;\n\
         master_process off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{\n    worker_connections 64;\n}}\n\
         http {{\n    access_log {d}/access.log;\n    {temp_paths}    include {d}/site.conf;\n}}\n"
    )
}

/// nginx as a child process in front of `upstream`; killed when dropped. One process
/// (`master_process off`), so killing it leaves nothing behind.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with the example site on a free port of 127.0.0.1 and waits until it
    /// accepts connections. If another program takes the port first, nginx exits and the start
    /// is retried on another one.
    fn start(nginx: &Path, upstream: SocketAddr, name: &str) -> Nginx {
        Nginx::start_site(nginx, name, |_, listen| site_config(upstream, listen))
    }

    /// Starts nginx with the site `site(dir, listen)` writes, `dir` being nginx's scratch
    /// directory, `listen` the free port of 127.0.0.1 it is to listen on.
    fn start_site(nginx: &Path, name: &str, site: impl Fn(&Path, SocketAddr) -> String) -> Nginx {
        let build = nginx_build(nginx);
        let dir = temp_dir(&format!("nginx-{name}"));
        let config = dir.join("nginx.conf");
        fs::write(&config, main_config(&dir, &build)).expect("write nginx.conf");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            fs::write(dir.join("site.conf"), site(&dir, addr)).expect("write site.conf");
            let _ = fs::remove_file(dir.join("error.log"));
            let stderr = File::create(dir.join("stderr.log")).expect("create stderr.log");
            let mut command = Command::new(nginx);
            command.arg("-p").arg(&dir).arg("-c").arg(&config);
            if build.has_error_log_flag {
                command.arg("-e").arg(dir.join("error.log"));
            }
            let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn().expect("start nginx");
            let mut server = Nginx { child, addr, dir: dir.clone() };
            let deadline = Instant::now() + WAIT;
            loop {
                if let Some(status) = server.child.try_wait().expect("wait for nginx") {
                    let logs = server.logs();
                    if logs.contains("Address already in use") {
                        break;
                    }
                    panic!("nginx exited ({status}) with the example site:\n{logs}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return server;
                }
                assert!(Instant::now() < deadline, "nginx did not listen within {WAIT:?}:\n{}", server.logs());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx did not start: no free port");
    }

    /// nginx's stderr and error log, for failure messages.
    fn logs(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .map(|file| format!("--- {file}\n{}", fs::read_to_string(self.dir.join(file)).unwrap_or_default()))
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// mppd on a free port of 127.0.0.1, nothing saved, with `extra` options.
fn mppd(extra: &[&str]) -> Mppd {
    let mut args = vec!["--data-dir", "", "--salt", SALT];
    args.extend_from_slice(extra);
    Mppd::start(&args)
}

/// The user id mppd gives to a client at `ip`.
fn id_of(ip: [u8; 4]) -> String {
    identity_for_address(SALT, IpAddr::V4(Ipv4Addr::from(ip)), None).id.to_hex()
}

/// Connects to nginx from 127.0.0.`host`, upgrades to WebSocket through it (sending
/// `X-Forwarded-For: spoof` when given), says `hi` and returns the user id in the answer.
fn id_through(nginx: &Nginx, host: u8, spoof: Option<&str>) -> String {
    let stream = connect_from([127, 0, 0, host], nginx.addr);
    stream.set_read_timeout(Some(common::WAIT)).expect("set read timeout");
    stream.set_write_timeout(Some(common::WAIT)).expect("set write timeout");
    let url = format!("ws://{}/", nginx.addr);
    let mut request = url.as_str().into_client_request().expect("a WebSocket request");
    if let Some(spoof) = spoof {
        request.headers_mut().insert("X-Forwarded-For", HeaderValue::from_str(spoof).expect("a header value"));
    }
    let (ws, response) = tungstenite::client::client(request, stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake through nginx at {url} failed: {e}"));
    assert_eq!(response.status().as_u16(), 101);
    let mut client = Client { ws };
    client.send(&[json!({"m": "hi"})]);
    let hi = client.expect_message("hi");
    hi["u"]["_id"].as_str().unwrap_or_else(|| panic!("hi without an id: {hi}")).to_string()
}

/// `GET path` through nginx from 127.0.0.`host`; the status and the body.
fn get(nginx: &Nginx, host: u8, path: &str) -> (u16, String) {
    let mut stream = connect_from([127, 0, 0, host], nginx.addr);
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    stream.set_write_timeout(Some(WAIT)).expect("set write timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: piano.example.org\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut bytes = Vec::new();
    if let Err(e) = stream.read_to_end(&mut bytes) {
        panic!("no complete answer to GET {path} through nginx ({e}): {:?}", String::from_utf8_lossy(&bytes));
    }
    let response = String::from_utf8_lossy(&bytes).into_owned();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

#[test]
fn trusted_proxy_gives_the_client_its_own_id() {
    let Some(binary) = nginx_or_skip() else { return };
    let server = mppd(&["--trusted-proxy", "127.0.0.1"]);
    let nginx = Nginx::start(&binary, server.addr, "trusted");

    assert_eq!(id_through(&nginx, 7, None), id_of([127, 0, 0, 7]), "the id of the client's address");
    assert_ne!(id_of([127, 0, 0, 7]), id_of([127, 0, 0, 1]));

    // The example replaces the header, so a client cannot choose its address (and id).
    let spoofed = id_through(&nginx, 8, Some("1.2.3.4"));
    assert_eq!(spoofed, id_of([127, 0, 0, 8]), "a client-sent X-Forwarded-For must be replaced");
    assert_ne!(spoofed, id_of([1, 2, 3, 4]));
    let chained = id_through(&nginx, 9, Some("1.2.3.4, 127.0.0.1"));
    assert_eq!(chained, id_of([127, 0, 0, 9]), "a client-sent chain must be replaced too");
    // Even from the proxy's own address, which mppd trusts: appending would make 1.2.3.4 the
    // client here.
    assert_eq!(id_through(&nginx, 1, Some("1.2.3.4")), id_of([127, 0, 0, 1]), "from 127.0.0.1");
}

#[test]
fn untrusted_proxy_gives_everyone_the_id_of_nginx() {
    let Some(binary) = nginx_or_skip() else { return };
    let server = mppd(&[]);
    let nginx = Nginx::start(&binary, server.addr, "untrusted");

    assert_eq!(id_through(&nginx, 7, None), id_of([127, 0, 0, 1]), "the id of nginx's address");
    assert_eq!(id_through(&nginx, 8, Some("1.2.3.4")), id_of([127, 0, 0, 1]));
}

#[test]
fn health_and_metrics_through_nginx() {
    let Some(binary) = nginx_or_skip() else { return };
    let server = mppd(&["--trusted-proxy", "127.0.0.1"]);
    let nginx = Nginx::start(&binary, server.addr, "http");

    let (status, body) = get(&nginx, 7, "/health");
    assert_eq!(status, 200, "/health through nginx: {body}");
    let health: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(health["status"], "ok", "{health}");

    let (status, body) = get(&nginx, 1, "/metrics");
    assert_eq!(status, 200, "/metrics from 127.0.0.1 through nginx: {body}");
    assert!(body.contains("mppd_connections_open"), "{body}");
    // The example allows /metrics to 127.0.0.1 and ::1 only.
    let (status, _) = get(&nginx, 7, "/metrics");
    assert_eq!(status, 403, "/metrics from another address through nginx");
}

/// The TLS site as shipped.
const TLS_EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx-mppd-tls.conf");

/// A free port of 127.0.0.1 (bound and released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

/// The TLS site pointed at `upstream`, its port 80 server on `http`, its port 443 server on
/// `https`, with a self-signed certificate and an ACME web root in `dir`.
fn tls_site_config(dir: &Path, upstream: SocketAddr, http: SocketAddr, https: SocketAddr) -> String {
    let example = fs::read_to_string(TLS_EXAMPLE).expect("read the TLS nginx site");
    let live = "/etc/letsencrypt/live/piano.example.org";
    let site = replace_once(&example, "server 127.0.0.1:8080;", &format!("server {upstream};"));
    let site = replace_once(&site, "listen 80;", &format!("listen {http};"));
    let site = replace_once(&site, "listen 443 ssl;", &format!("listen {https} ssl;"));
    let site = replace_once(&site, &format!("{live}/fullchain.pem"), &dir.join("cert.pem").display().to_string());
    let site = replace_once(&site, &format!("{live}/privkey.pem"), &dir.join("key.pem").display().to_string());
    let site = replace_once(&site, "root /var/www/certbot;", &format!("root {};", dir.join("webroot").display()));
    site.lines().filter(|line| !line.trim_start().starts_with("listen [::]:")).collect::<Vec<_>>().join("\n")
}

/// A self-signed certificate for piano.example.org in `dir` (`cert.pem`, `key.pem`).
fn self_signed_certificate(dir: &Path) -> bool {
    Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=piano.example.org", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `curl -k` over TLS to `url` with `headers`, for at most `seconds`; what it printed (the
/// response head with `-i`).
fn curl(url: &str, headers: &[&str], seconds: u32) -> String {
    let mut command = Command::new("curl");
    command.args(["-sk", "-i", "--http1.1", "--max-time", &seconds.to_string(), "--resolve"]);
    let port = url.rsplit(':').next().and_then(|rest| rest.split('/').next()).unwrap_or_default();
    command.arg(format!("piano.example.org:{port}:127.0.0.1"));
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.arg(url).stdin(Stdio::null()).output().expect("run curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The TLS site: port 80 answers ACME challenges from the web root and redirects everything
/// else to https://; port 443 serves mppd's HTTP and WebSocket upgrades over TLS.
#[test]
fn tls_site_redirects_http_and_proxies_https_and_wss() {
    let Some(binary) = nginx_or_skip() else { return };
    let server = mppd(&["--trusted-proxy", "127.0.0.1"]);
    if Command::new("openssl").arg("version").output().is_err() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: nginx TLS: openssl is not installed to make a certificate");
        return;
    }
    let https = free_addr();
    let nginx = Nginx::start_site(&binary, "tls", |dir, http| {
        assert!(self_signed_certificate(dir), "openssl made no certificate");
        fs::create_dir_all(dir.join("webroot/.well-known/acme-challenge")).expect("create the web root");
        fs::write(dir.join("webroot/.well-known/acme-challenge/token"), "proof").expect("write a challenge");
        tls_site_config(dir, server.addr, http, https)
    });

    let mut stream = connect_from([127, 0, 0, 7], nginx.addr);
    stream.set_read_timeout(Some(WAIT)).expect("set read timeout");
    stream.write_all(b"GET /room?x=1 HTTP/1.1\r\nHost: piano.example.org\r\nConnection: close\r\n\r\n").expect("send");
    let mut head = String::new();
    stream.read_to_string(&mut head).expect("read the redirect");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(head.contains("Location: https://piano.example.org/room?x=1\r\n"), "{head}");

    let (status, body) = get(&nginx, 7, "/.well-known/acme-challenge/token");
    assert_eq!((status, body.as_str()), (200, "proof"), "ACME challenges are served on port 80");

    if Command::new("curl").arg("--version").output().is_err() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: nginx TLS: curl is not installed for the https:// checks");
        return;
    }
    let base = format!("https://piano.example.org:{}", https.port());
    let health = curl(&format!("{base}/health"), &[], 10);
    assert!(health.starts_with("HTTP/1.1 200"), "/health over https://: {health}");
    assert!(health.contains("Strict-Transport-Security"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let upgrade = curl(
        &format!("{base}/"),
        &[
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
        2,
    );
    assert!(upgrade.starts_with("HTTP/1.1 101"), "a WebSocket upgrade over https:// (wss://): {upgrade}");
    assert!(upgrade.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "mppd's accept key comes through: {upgrade}");
}

/// The nginx service of `deploy/compose.yaml` rewrites the shipped TLS site at start (upstream
/// to the mppd container, the domain, no IPv6 listeners); what its command writes is a site
/// `nginx -t` accepts.
#[test]
fn compose_nginx_command_writes_a_valid_site() {
    let Some(binary) = nginx_or_skip() else { return };
    if Command::new("openssl").arg("version").output().is_err() {
        let _ = writeln!(std::io::stderr(), "SKIPPED: nginx compose site: openssl is not installed");
        return;
    }
    let compose = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml");
    let compose: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(compose).expect("read compose.yaml")).expect("YAML");
    let command = compose["services"]["nginx"]["command"][2].as_str().expect("the nginx command").to_string();
    let dir = temp_dir("nginx-compose");
    // Compose turns `$$` into `$`; only the part that writes the site runs here.
    let write_site = command
        .replace("$$", "$")
        .replace("/site/nginx-mppd-tls.conf", TLS_EXAMPLE)
        .replace("/etc/nginx/conf.d/default.conf", &dir.join("site.conf").display().to_string());
    let write_site = write_site.split(" && ").next().expect("a sed command").to_string();
    let status =
        Command::new("sh").arg("-c").arg(&write_site).env("MPPD_DOMAIN", "piano.test").status().expect("run sh");
    assert!(status.success(), "{write_site}");
    let site = fs::read_to_string(dir.join("site.conf")).expect("the written site");
    assert!(site.contains("server 172.29.0.2:8080;") && site.contains("server_name piano.test;"), "{site}");
    assert!(!site.contains("listen [::]") && !site.contains("piano.example.org"), "{site}");

    assert!(self_signed_certificate(&dir), "openssl made no certificate");
    let site = site
        .replace("/etc/letsencrypt/live/piano.test/fullchain.pem", &dir.join("cert.pem").display().to_string())
        .replace("/etc/letsencrypt/live/piano.test/privkey.pem", &dir.join("key.pem").display().to_string());
    fs::write(dir.join("site.conf"), site).expect("write the site");
    fs::write(dir.join("nginx.conf"), main_config(&dir, &nginx_build(&binary))).expect("write nginx.conf");
    let output = Command::new(&binary)
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .output()
        .expect("run nginx -t");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success() && text.contains("test is successful"), "{text}");
    let _ = fs::remove_dir_all(&dir);
}
