//! The log: one line per record on standard output, as text
//! (`2026-01-02T03:04:05.678Z INFO  [mppd::net] listening on 0.0.0.0:8080`) or as JSON lines
//! (`--log-format json`: `{"ts":…,"level":"INFO","target":"mppd::net","msg":…}`), filtered by
//! level in the syntax of `RUST_LOG`: a default level and per-module levels
//! (`info,mppd::net=debug`).

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// How a line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Which records pass: the most specific module directive whose name prefixes the target, else
/// the default level.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter {
    default: LevelFilter,
    /// (module path, level), longest paths first.
    modules: Vec<(String, LevelFilter)>,
}

/// Everything at `info` and above.
impl Default for Filter {
    fn default() -> Filter {
        Filter { default: LevelFilter::Info, modules: Vec::new() }
    }
}

impl Filter {
    /// Parses `level` or `level,module=level,…` (a bare `module` path, `mppd…` or containing
    /// `::`, means every level of it).
    pub fn parse(spec: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((module, level)) => {
                    filter.modules.push((module.trim().to_string(), level_of(level)?));
                }
                None => match level_of(part) {
                    Ok(level) => filter.default = level,
                    // A bare module name turns all of it on; a word that is neither a level nor
                    // one of mppd's modules is a mistyped level.
                    Err(_) if is_module(part) => {
                        filter.modules.push((part.to_string(), LevelFilter::Trace));
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        filter.modules.sort_by_key(|(module, _)| std::cmp::Reverse(module.len()));
        Ok(filter)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.modules
            .iter()
            .find(|(module, _)| {
                target == module || target.strip_prefix(module.as_str()).is_some_and(|rest| rest.starts_with("::"))
            })
            .map_or(self.default, |(_, level)| *level)
    }

    /// The most verbose level any module may log at (for `log::set_max_level`).
    fn max(&self) -> LevelFilter {
        self.modules.iter().map(|(_, level)| *level).chain([self.default]).max().unwrap_or(LevelFilter::Info)
    }
}

fn is_module(word: &str) -> bool {
    (word.starts_with("mppd") || word.contains("::"))
        && word.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':')
}

fn level_of(text: &str) -> Result<LevelFilter, String> {
    text.trim().parse().map_err(|_| format!("expected off, error, warn, info, debug or trace, got {text:?}"))
}

struct Logger {
    filter: Filter,
    format: Format,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(self.format, unix_ms(), record.level(), record.target(), &record.args().to_string());
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Installs the logger; an error if one is installed already.
pub fn init(filter: Filter, format: Format) -> Result<(), log::SetLoggerError> {
    let max = filter.max();
    // Installed once for the life of the process, so leaking it is what keeps it.
    log::set_logger(Box::leak(Box::new(Logger { filter, format })))?;
    log::set_max_level(max);
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One line, with its newline.
fn format_line(format: Format, ms: u64, level: log::Level, target: &str, message: &str) -> String {
    let ts = timestamp(ms);
    match format {
        Format::Text => format!("{ts} {:<5} [{target}] {message}\n", level.as_str()),
        Format::Json => {
            let line = serde_json::json!({ "ts": ts, "level": level.as_str(), "target": target, "msg": message });
            format!("{line}\n")
        }
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn timestamp(ms: u64) -> String {
    let (days, in_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days as i64);
    let (h, m, s, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the well-known era-based
/// conversion: 400-year eras of 146 097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_rust_log_syntax() {
        let f = Filter::parse("warn,mppd::net=debug,mppd::net::event_loop=trace").unwrap();
        assert_eq!(f.level_for("mppd"), LevelFilter::Warn);
        assert_eq!(f.level_for("mppd::net::admission"), LevelFilter::Debug);
        assert_eq!(f.level_for("mppd::net::event_loop"), LevelFilter::Trace);
        assert_eq!(f.level_for("mppd::network"), LevelFilter::Warn, "a module prefix ends at ::");
        assert_eq!(f.max(), LevelFilter::Trace);
        assert_eq!(Filter::parse("DEBUG").unwrap().level_for("x"), LevelFilter::Debug);
        assert_eq!(Filter::parse("mppd_core").unwrap().level_for("mppd_core::room"), LevelFilter::Trace);
        assert!(Filter::parse("loud").is_err());
        assert!(Filter::parse("mppd=loud").is_err());
    }

    #[test]
    fn lines_as_text_and_json() {
        let ms = 1_796_587_568_020;
        assert_eq!(timestamp(ms), "2026-12-06T20:06:08.020Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000Z");
        let text = format_line(Format::Text, ms, log::Level::Info, "mppd::net", "listening on 1.2.3.4:5");
        assert_eq!(text, "2026-12-06T20:06:08.020Z INFO  [mppd::net] listening on 1.2.3.4:5\n");
        let json = format_line(Format::Json, ms, log::Level::Warn, "mppd", "a \"quoted\"\nline");
        let value: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["msg"], "a \"quoted\"\nline");
        assert_eq!(value["ts"], "2026-12-06T20:06:08.020Z");
        assert_eq!(json.matches('\n').count(), 1, "one line per record");
    }
}
