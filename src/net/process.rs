//! The process's own resource use for `/metrics`, read from `/proc/self` (Linux) by the names
//! Prometheus client libraries use: resident memory, CPU seconds, open descriptors, start time.
//! Where `/proc` cannot be read a value is left out rather than reported wrong.

use std::fs;

/// Clock ticks per second of the times in `/proc/<pid>/stat` (`USER_HZ`): the kernel reports
/// them in this unit on every architecture Linux runs mppd on (proc(5), `sysconf(_SC_CLK_TCK)`).
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc` says about this process now.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ProcessStats {
    pub(super) resident_bytes: Option<u64>,
    pub(super) cpu_seconds: Option<f64>,
    pub(super) open_fds: Option<u64>,
    pub(super) max_fds: Option<u64>,
    /// Seconds since the Unix epoch at which the process started.
    pub(super) start_time_seconds: Option<f64>,
}

impl ProcessStats {
    pub(super) fn read() -> ProcessStats {
        let stat = fs::read_to_string("/proc/self/stat").ok();
        let fields = stat.as_deref().map(stat_fields).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let boot_time = fs::read_to_string("/proc/stat").ok().and_then(|text| boot_time(&text));
        ProcessStats {
            resident_bytes: fs::read_to_string("/proc/self/status").ok().and_then(|text| resident_bytes(&text)),
            // utime and stime: fields 14 and 15 of proc(5), 0-based 11 and 12 after the name.
            cpu_seconds: ticks(11).zip(ticks(12)).map(|(user, system)| (user + system) as f64 / TICKS_PER_SECOND),
            open_fds: fs::read_dir("/proc/self/fd").ok().map(|dir| dir.count() as u64),
            max_fds: fs::read_to_string("/proc/self/limits").ok().and_then(|text| max_open_files(&text)),
            // starttime: field 22, ticks after boot.
            start_time_seconds: ticks(19)
                .zip(boot_time)
                .map(|(start, boot)| boot as f64 + start as f64 / TICKS_PER_SECOND),
        }
    }
}

/// The fields of `/proc/self/stat` after the command name (which may contain spaces and
/// parentheses, so it is skipped up to the last `)`); index 0 is the state (field 3).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default()
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `btime` of `/proc/stat`: boot time in seconds since the Unix epoch.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of open files from `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_parsed() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 12345 9000 300";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!((fields[11], fields[12], fields[19]), ("250", "50", "12345"));
        assert_eq!(resident_bytes("Name:\tmppd\nVmRSS:\t    2136 kB\n"), Some(2136 * 1024));
        assert_eq!(boot_time("cpu 1 2 3\nbtime 1796586862\nprocesses 9\n"), Some(1_796_586_862));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
    }

    #[test]
    fn this_process_is_measured() {
        let stats = ProcessStats::read();
        assert!(stats.resident_bytes.is_some_and(|b| b > 100_000), "{stats:?}");
        assert!(stats.open_fds.is_some_and(|n| n >= 3), "{stats:?}");
        assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64();
        let started = stats.start_time_seconds.expect("a start time");
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0, "{started} vs {now}");
    }
}
