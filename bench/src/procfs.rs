//! What the generator reads about processes from /proc: CPU time and resident memory.

use std::fs;
use std::io::{Read, Seek, SeekFrom};

/// Clock ticks per second of the CPU times in /proc/PID/stat.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no pointer arguments.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User plus system CPU seconds of a process (`pid` 0 means this one).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(u, s)| u + s)
}

/// User and system CPU seconds of a process (`pid` 0 means this one).
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let path = if pid == 0 { "/proc/self/stat".to_string() } else { format!("/proc/{pid}/stat") };
    let stat = fs::read_to_string(path).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let hz = ticks_per_second();
    Some((utime as f64 / hz, stime as f64 / hz))
}

/// CPU seconds the whole machine spent busy (all cores; everything but idle and iowait).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().take(8).filter_map(|f| f.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    let busy = v.iter().sum::<u64>() - v[3] - v[4];
    Some(busy as f64 / ticks_per_second())
}

/// Whether the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// Resident set size in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vm_rss(&fs::read(format!("/proc/{pid}/status")).ok()?)
}

/// The KiB of the `VmRSS:` line of a /proc/PID/status text.
pub fn parse_vm_rss(status: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(status, b"\nVmRSS:")? + 7;
    let rest = &status[at..];
    let digits = rest.iter().position(u8::is_ascii_digit)?;
    let rest = &rest[digits..];
    let len = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..len]).ok()?.parse().ok()
}

/// Reads one process's VmRSS again and again through one open file and one buffer: cheap
/// enough to sample every 100 ms from the generator's loop.
pub struct RssProbe {
    file: fs::File,
    buf: Vec<u8>,
}

impl RssProbe {
    pub fn open(pid: u32) -> Option<RssProbe> {
        let file = fs::File::open(format!("/proc/{pid}/status")).ok()?;
        Some(RssProbe { file, buf: vec![0; 8192] })
    }

    /// The current VmRSS in KiB; `None` once the process is gone.
    pub fn kib(&mut self) -> Option<u64> {
        // Seeking a /proc file back to 0 makes the kernel render it afresh.
        self.file.seek(SeekFrom::Start(0)).ok()?;
        let mut len = 0;
        while len < self.buf.len() {
            match self.file.read(&mut self.buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
        parse_vm_rss(&self.buf[..len])
    }
}

/// Raises the open-file limit to its hard maximum; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        assert!(cpu_seconds(0).is_some());
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(alive(std::process::id()));
        assert!(machine_busy_seconds().is_some());
        assert!(!alive(u32::MAX));
    }

    #[test]
    fn parses_vm_rss() {
        let status = b"Name:\tmppd\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nRssAnon:\t 100 kB\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss(b"Name:\tx\nVmHWM:\t 1 kB\n"), None);
    }

    #[test]
    fn rss_probe_sees_memory_grow() {
        let mut probe = RssProbe::open(std::process::id()).unwrap();
        let before = probe.kib().unwrap();
        assert!(before > 0);
        // 64 MiB of non-zero bytes: every page is touched and resident.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = probe.kib().unwrap();
        assert!(after >= before + 32 * 1024, "{before} KiB -> {after} KiB");
        drop(std::hint::black_box(block));
        assert!(RssProbe::open(u32::MAX).is_none());
    }
}
