//! The deployment kit in `deploy/`: what can be checked without a container engine. The compose
//! file parses, runs mppd with its data directory in a volume, and names only files that exist;
//! the Dockerfile builds for the platform it is built for and checks health with `mppd health`;
//! the build context leaves build output out. The Dockerfile's build step itself runs in
//! `.ci/run` (deploy/build-static.sh), the nginx sites in tests/nginx.rs, the Caddyfile below
//! when Caddy is installed.

use serde_yaml::Value;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn compose() -> Value {
    serde_yaml::from_str(&read("deploy/compose.yaml")).expect("deploy/compose.yaml is valid YAML")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    &compose["services"][name]
}

/// Host paths a service reads: its build context and Dockerfile, and bind-mounted files.
fn named_files(compose: &Value) -> Vec<PathBuf> {
    let deploy = Path::new(ROOT).join("deploy");
    let mut files = Vec::new();
    let Some(services) = compose["services"].as_mapping() else { return files };
    for (_, service) in services {
        if let Some(context) = service["build"]["context"].as_str() {
            let context = deploy.join(context);
            files.push(context.clone());
            if let Some(dockerfile) = service["build"]["dockerfile"].as_str() {
                files.push(context.join(dockerfile));
            }
        }
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().and_then(|v| v.split(':').next()).unwrap_or_default();
            if source.starts_with('.') || source.starts_with('/') {
                files.push(deploy.join(source));
            }
        }
    }
    files
}

#[test]
fn compose_runs_mppd_with_a_data_volume() {
    let compose = compose();
    let mppd = service(&compose, "mppd");
    assert_eq!(mppd["build"]["dockerfile"].as_str(), Some("deploy/Dockerfile"));
    assert!(mppd["profiles"].is_null(), "mppd starts without a profile");
    let volumes: Vec<&str> =
        mppd["volumes"].as_sequence().expect("mppd has volumes").iter().filter_map(Value::as_str).collect();
    let data = volumes.iter().find(|v| v.ends_with(":/data")).expect("a volume on /data");
    let volume_name = data.trim_end_matches(":/data");
    assert!(compose["volumes"].get(volume_name).is_some(), "{volume_name} is a named volume");
    assert_eq!(mppd["environment"]["MPPD_DATA_DIR"].as_str(), Some("/data"));
    assert!(mppd["environment"].get("MPPD_SALT").is_none(), "no salt is shipped: it is created in the data volume");
    for proxy in ["nginx", "caddy"] {
        let front = service(&compose, proxy);
        assert_eq!(front["profiles"][0].as_str(), Some(proxy), "{proxy} is optional");
        assert_eq!(
            front["networks"]["mppd"]["ipv4_address"].as_str(),
            mppd["environment"]["MPPD_TRUSTED_PROXY"].as_str(),
            "mppd trusts X-Forwarded-For from {proxy}'s address"
        );
    }
}

#[test]
fn compose_names_only_files_that_exist() {
    let files = named_files(&compose());
    assert!(files.len() >= 4, "{files:?}");
    for file in files {
        assert!(file.exists(), "deploy/compose.yaml names {}, which does not exist", file.display());
    }
    let nginx_command = format!("{:?}", service(&compose(), "nginx")["command"]);
    assert!(nginx_command.contains("127.0.0.1:8080"), "the nginx profile rewrites the shipped site's upstream");
    assert!(read("deploy/nginx-mppd-tls.conf").contains("server 127.0.0.1:8080;"));
}

#[test]
fn dockerfile_builds_for_its_platform_and_checks_health() {
    let dockerfile = read("deploy/Dockerfile");
    assert!(dockerfile.contains("ARG TARGETARCH"), "the build knows the platform it is for");
    assert!(dockerfile.contains("deploy/build-static.sh"), "the build step is the script CI runs");
    assert!(dockerfile.contains(r#"HEALTHCHECK"#) && dockerfile.contains(r#"CMD ["/mppd", "health"]"#));
    assert!(!dockerfile.contains("MPPD_SALT="), "no salt in the image");
    let script = read("deploy/build-static.sh");
    for (arch, triple) in [("amd64", "x86_64-unknown-linux-musl"), ("arm64", "aarch64-unknown-linux-musl")] {
        assert!(script.contains(arch) && script.contains(triple), "build-static.sh builds {arch} as {triple}");
    }
    // Every COPY source of the build stage is in the build context.
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let source = line.split_whitespace().nth(1).expect("COPY SOURCE DEST");
        assert!(Path::new(ROOT).join(source).exists(), "{line}");
    }
}

#[test]
fn dockerignore_keeps_build_output_out_of_the_context() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
    for needed in ["target/", "**/target/", "fuzz/corpus/", ".git/"] {
        assert!(patterns.contains(&needed), ".dockerignore lacks {needed}");
    }
    for kept in ["src", "Cargo.toml", "Cargo.lock", "deploy"] {
        assert!(!patterns.iter().any(|p| p.trim_end_matches('/') == kept), ".dockerignore must keep {kept}");
    }
}

/// `caddy validate` on the shipped Caddyfile (with the compose file's upstream, too). Skipped
/// with a line when Caddy is not installed; `.ci/run` installs it.
#[test]
fn caddyfile_is_valid() {
    let Ok(version) = Command::new("caddy").arg("version").output() else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: caddy: not installed");
        return;
    };
    assert!(version.status.success());
    for upstream in ["127.0.0.1:8080", "172.29.0.2:8080"] {
        let output = Command::new("caddy")
            .args(["validate", "--adapter", "caddyfile", "--config"])
            .arg(Path::new(ROOT).join("deploy/Caddyfile"))
            .env("MPPD_DOMAIN", "piano.example.org")
            .env("MPPD_UPSTREAM", upstream)
            .env("XDG_DATA_HOME", std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .expect("run caddy validate");
        let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && text.contains("Valid configuration"), "{text}");
    }
}
