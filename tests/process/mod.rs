//! The real `mppd` binary as a child process for tests: started on a free port of 127.0.0.1,
//! its log lines collected so a test can wait for one, stopped with a signal or killed.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const MPPD: &str = env!("CARGO_BIN_EXE_mppd");

/// A command that runs the `mppd` binary. When `MPPD_TEST_RUNNER` is set and not empty (for
/// example `qemu-aarch64 -L /usr/aarch64-linux-gnu`, set by `scripts/cross-test.sh` for tests
/// built for another architecture), its words come first and the binary is their last argument.
pub fn mppd_command() -> Command {
    let runner = std::env::var("MPPD_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(MPPD);
            command
        }
        None => Command::new(MPPD),
    }
}

/// Whether the binary runs under an emulator (see [`mppd_command`]): ten or more times slower,
/// so promises about wall-clock time are checked on the build machine only.
pub fn emulated() -> bool {
    std::env::var("MPPD_TEST_RUNNER").is_ok_and(|runner| !runner.trim().is_empty())
}

/// How long a test waits for a log line or an exit.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `mppd`; killed when dropped.
pub struct Mppd {
    pub child: Child,
    pub addr: SocketAddr,
    log: Receiver<String>,
    /// Lines logged before "listening on", not yet searched by a test.
    early: VecDeque<String>,
}

impl Mppd {
    /// Starts `mppd --listen 127.0.0.1:<free port> ARGS` and waits for "listening on". The port
    /// is found by binding and releasing it; if another program takes it first the server exits
    /// and the start is retried.
    pub fn start(args: &[&str]) -> Mppd {
        Mppd::start_with_env(args, &[])
    }

    /// [`start`](Self::start) with these environment variables set too.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Mppd {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = mppd_command()
                .args(["--listen", &addr.to_string()])
                .args(args)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start mppd");
            let (lines, log) = mpsc::channel();
            for pipe in [
                child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
                child.stderr.take().map(|p| Box::new(p) as _),
            ]
            .into_iter()
            .flatten()
            {
                let lines = lines.clone();
                // Reads the log to its end, so the server never blocks on a full pipe.
                std::thread::spawn(move || {
                    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                        let _ = lines.send(line);
                    }
                });
            }
            let mut server = Mppd { child, addr, log, early: VecDeque::new() };
            let listening = format!("listening on {addr}");
            let deadline = Instant::now() + WAIT;
            while let Ok(line) = server.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                if line.contains(&listening) {
                    return server;
                }
                server.early.push_back(line);
            }
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        panic!("mppd did not start");
    }

    /// Waits for a log line containing `text` (lines before it are skipped); `None` if the
    /// process ended first or after [`WAIT`].
    pub fn wait_for_log(&mut self, text: &str) -> Option<String> {
        while let Some(line) = self.early.pop_front() {
            if line.contains(text) {
                return Some(line);
            }
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match self.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(text) => return Some(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    /// Like [`wait_for_log`](Self::wait_for_log), failing the test when the line never comes.
    pub fn expect_log(&mut self, text: &str) -> String {
        self.wait_for_log(text).unwrap_or_else(|| panic!("mppd never logged {text:?}"))
    }

    /// Every log line not yet searched, to the end of the log: call it after the process
    /// exited (its pipes are closed then).
    pub fn drain_log(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = self.early.drain(..).collect();
        while let Ok(line) = self.log.recv_timeout(WAIT) {
            lines.push(line);
        }
        lines
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits for the process to exit, failing the test after [`WAIT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for mppd") {
                return status;
            }
            assert!(Instant::now() < deadline, "mppd did not exit within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mppd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mppd-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

/// Connects to `addr` from the loopback address `from` (127.0.0.x), so that tests can be
/// several users: user ids derive from the client address.
pub fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("a socket");
    socket.bind(&SocketAddr::from((from, 0)).into()).expect("bind the client address");
    socket.connect(&addr.into()).expect("connect");
    socket.into()
}
