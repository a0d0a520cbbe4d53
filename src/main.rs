//! The `mppd` binary: configuration from the command line and environment, logging, serving.

mod cli;

use cli::Command;
use log::LevelFilter;
use mppd::net::Server;
use simple_logger::SimpleLogger;
use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let (mut config, seed_given) = match cli::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(Command::Run { config, seed_given }) => (config, seed_given),
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mppd: {e}\nTry `mppd --help`.");
            return ExitCode::from(2);
        }
    };
    let level = config.log_level.parse().unwrap_or(LevelFilter::Info);
    if let Err(e) = SimpleLogger::new().with_level(level).with_utc_timestamps().init() {
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
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A seed from the system's random source, or from the clock where there is none.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
