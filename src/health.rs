//! `mppd health [ADDR]`: asks a running server's `/health` and exits 0 when it answers `200`,
//! 1 otherwise (not listening, `503` while saving the state fails, no answer in time). It is the
//! container image's health check: that image has no shell and no HTTP client.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long connecting, and then the answer, may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Most of the answer read (a `/health` body is about a hundred bytes).
const MAX_ANSWER: u64 = 64 * 1024;

/// The address to ask: `ADDR`, else the first of `MPPD_LISTEN`, else `WS_PORT`, else port
/// 8080; an unspecified address (0.0.0.0, ::) is asked on loopback.
fn target(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, String> {
    let text = match args {
        [] => env("MPPD_LISTEN")
            .and_then(|list| list.split(',').next().map(|first| first.trim().to_string()))
            .or_else(|| env("WS_PORT").map(|port| format!("0.0.0.0:{}", port.trim())))
            .unwrap_or_else(|| "127.0.0.1:8080".to_string()),
        [addr] => addr.clone(),
        _ => return Err("expected at most one address".to_string()),
    };
    let mut addr: SocketAddr =
        text.parse().map_err(|_| format!("expected an address like 127.0.0.1:8080, got {text:?}"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// The status code and body of `GET /health` at `addr`.
fn ask(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut bytes = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut bytes)?;
    let answer = String::from_utf8_lossy(&bytes);
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    Ok((status, body))
}

/// Runs the check and prints what the server said (or why it could not be asked).
pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "Usage: mppd health [ADDR]\n\nExits 0 when the server at ADDR (default: the first of MPPD_LISTEN, else port WS_PORT, else 127.0.0.1:8080) answers /health with 200."
        );
        return ExitCode::SUCCESS;
    }
    let addr = match target(args, |k| std::env::var(k).ok()) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("mppd health: {e}");
            return ExitCode::from(2);
        }
    };
    match ask(addr) {
        Ok((200, body)) => {
            println!("{}", body.trim());
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            println!("{status} {}", body.trim());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mppd health: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(args: &[&str], env: &[(&str, &str)]) -> Result<SocketAddr, String> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        target(&args, |k| env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn the_address_comes_from_the_argument_or_the_listen_setting() {
        assert_eq!(target_of(&[], &[]), Ok("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(target_of(&["10.0.0.1:9"], &[("MPPD_LISTEN", "0.0.0.0:1")]), Ok("10.0.0.1:9".parse().unwrap()));
        assert_eq!(target_of(&[], &[("MPPD_LISTEN", "0.0.0.0:8080,[::]:8081")]), Ok("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(target_of(&[], &[("MPPD_LISTEN", "[::]:7")]), Ok("[::1]:7".parse().unwrap()));
        assert_eq!(target_of(&[], &[("WS_PORT", "9000")]), Ok("127.0.0.1:9000".parse().unwrap()));
        assert!(target_of(&["nowhere"], &[]).is_err());
        assert!(target_of(&["a", "b"], &[]).is_err());
    }
}
