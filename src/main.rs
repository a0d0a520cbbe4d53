//! The `mppd` binary: configuration from the command line and environment, logging, serving.

mod cli;
mod health;
mod logging;

use cli::Command;
use mppd::net::{Server, ShutdownHandle};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("replay") => return replay(&args[1..]),
        Some("health") => return health::run(&args[1..]),
        _ => {}
    }
    let (mut config, seed_given) = match cli::parse(args, |k| std::env::var(k).ok()) {
        Ok(Command::Run { config, seed_given }) => (config, seed_given),
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("mppd {}", mppd::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Command::PrintConfig(config)) => {
            println!("{}", cli::effective_config(&config));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mppd: {e}\nTry `mppd --help`.");
            return ExitCode::from(2);
        }
    };
    // The option was checked when it was parsed.
    let filter = logging::Filter::parse(&config.log_level).unwrap_or_default();
    let format = if config.log_format == "json" { logging::Format::Json } else { logging::Format::Text };
    if let Err(e) = logging::init(filter, format) {
        eprintln!("mppd: cannot start logging: {e}");
    }
    if !seed_given {
        config.core.seed = random_seed();
    }
    let server = match Server::bind(*config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    stop_on_signals(server.shutdown_handle());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT start a graceful shutdown: stop accepting, close every client with 4000,
/// save the state, exit 0. signal-hook installs the handler (README "Dependencies"); a thread
/// waits for its notifications and wakes the event loop.
fn stop_on_signals(handle: ShutdownHandle) {
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            log::warn!("cannot handle SIGTERM and SIGINT ({e}); they will stop the server without saving");
            return;
        }
    };
    let waiter = std::thread::Builder::new().name("mppd-signals".into()).spawn(move || {
        for signal in signals.forever() {
            log::info!("received signal {signal}; shutting down");
            handle.shutdown();
        }
    });
    if let Err(e) = waiter {
        log::warn!("cannot start the signal thread ({e}); stop the server with SIGKILL");
    }
}

/// A seed from the system's random source, or from the clock where there is none.
fn random_seed() -> u64 {
    if let Ok(bytes) = mppd::salt::random_bytes::<8>() {
        return u64::from_le_bytes(bytes);
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// `mppd replay FILE [--check]`: feeds a recording to a fresh core and prints every output as a
/// JSON line, or with `--check` compares them with the recorded outputs.
fn replay(args: &[String]) -> ExitCode {
    let (mut path, mut check) = (None, false);
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            "--help" | "-h" => {
                println!("Usage: mppd replay FILE [--check]\n\nReplays a recording made with --record.");
                return ExitCode::SUCCESS;
            }
            other if path.is_none() && !other.starts_with("--") => path = Some(other.to_string()),
            other => {
                eprintln!("mppd replay: unexpected argument {other:?}\nUsage: mppd replay FILE [--check]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("mppd replay: which recording?\nUsage: mppd replay FILE [--check]");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(file) => std::io::BufReader::new(file),
        Err(e) => {
            eprintln!("mppd replay: cannot open {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match mppd::record::replay(file, check, &mut out) {
        Ok(report) => {
            drop(out);
            if let Some(line) = report.truncated_line {
                eprintln!("mppd replay: line {line} is cut short (the server was stopped while writing); ignored");
            }
            if let Some(line) = report.unfinished_input {
                eprintln!(
                    "mppd replay: the recording ends before the outputs of line {line} (the server was stopped); not checked"
                );
            }
            let verdict = if check { ", all outputs identical" } else { "" };
            eprintln!("mppd replay: {} inputs, {} outputs{verdict}", report.inputs, report.outputs);
            ExitCode::SUCCESS
        }
        Err(e) => {
            drop(out);
            eprintln!("mppd replay: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
