//! Recordings: every input the core receives, with its `now`, as JSON lines, optionally with the
//! outputs it produced; and the replayer that rebuilds a core from a recording and feeds it the
//! same inputs. The core is deterministic, so a replay reproduces the outputs byte for byte.
//!
//! Format (one JSON object per line; see docs/recording.md):
//! ```text
//! {"mppd_recording":1,"version":"0.1.0","addresses":"raw","outputs":true,"core":{…CoreConfig…}}
//! {"in":"open","at":1700000000000,"conn":1,"ip":"127.0.0.1"}
//! {"out":"send","conn":1,"frame":"[{\"m\":\"b\",\"code\":\"~return true\"}]"}
//! {"in":"text","at":1700000000005,"conn":1,"text":"[{\"m\":\"hi\"}]"}
//! {"in":"closed","at":1700000000900,"conn":1}
//! {"in":"tick","at":1700000060000}
//! ```
//!
//! Blank lines and lines starting with `#` are skipped, so hand-written recordings can explain
//! themselves.

use crate::config::CoreConfig;
use crate::core::{ConnId, Core, Input, Millis, Output, PeerInfo, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The format this build writes and reads. Any other version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// What a recording keeps of client addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressMode {
    /// The addresses and the id salt as the core saw them: the replay reproduces user ids, so
    /// `--check` works. Such a file identifies people; keep it private.
    Raw,
    /// Each address is replaced by `10.x.y.z` in order of first appearance and the salt by a
    /// placeholder: safe to share, and people stay distinct, but user ids differ from the live
    /// ones, so recorded outputs cannot be checked.
    Pseudonymous,
}

impl std::str::FromStr for AddressMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(AddressMode::Raw),
            "pseudonymous" => Ok(AddressMode::Pseudonymous),
            other => Err(format!("unknown address mode `{other}` (raw or pseudonymous)")),
        }
    }
}

/// The first line of a recording: everything besides the inputs that the core depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub mppd_recording: u32,
    pub version: String,
    pub addresses: AddressMode,
    pub outputs: bool,
    pub core: CoreConfig,
    /// The saved state the live core was restored from at startup (src/store.rs), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<Snapshot>,
}

/// One input line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "lowercase")]
pub enum InputLine {
    Open {
        at: Millis,
        conn: usize,
        ip: IpAddr,
    },
    Text {
        at: Millis,
        conn: usize,
        text: String,
    },
    Closed {
        at: Millis,
        conn: usize,
    },
    Tick {
        at: Millis,
    },
    /// Saved state loaded while running (a cluster node learning another node's names and bans).
    Restore {
        at: Millis,
        snapshot: Snapshot,
    },
}

/// One output line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "out", rename_all = "lowercase")]
pub enum OutputLine {
    Send {
        conn: usize,
        frame: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        droppable: bool,
    },
    Close {
        conn: usize,
        code: u16,
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Input(InputLine),
    Output(OutputLine),
}

impl InputLine {
    pub fn from_input(now: Millis, input: &Input<'_>) -> InputLine {
        match input {
            Input::Open { conn, peer } => InputLine::Open { at: now, conn: conn.0, ip: peer.ip },
            Input::Text { conn, text } => InputLine::Text { at: now, conn: conn.0, text: (*text).to_string() },
            Input::Closed { conn } => InputLine::Closed { at: now, conn: conn.0 },
            Input::Tick => InputLine::Tick { at: now },
        }
    }

    /// Feeds this input to a core.
    pub fn apply(&self, core: &mut Core) {
        match self {
            InputLine::Open { at, conn, ip } => {
                core.handle(*at, Input::Open { conn: ConnId(*conn), peer: PeerInfo { ip: *ip } })
            }
            InputLine::Text { at, conn, text } => core.handle(*at, Input::Text { conn: ConnId(*conn), text }),
            InputLine::Closed { at, conn } => core.handle(*at, Input::Closed { conn: ConnId(*conn) }),
            InputLine::Tick { at } => core.handle(*at, Input::Tick),
            InputLine::Restore { snapshot, .. } => core.restore(snapshot.clone()),
        }
    }
}

impl OutputLine {
    pub fn from_output(output: &Output) -> OutputLine {
        match output {
            Output::Send { conn, frame, droppable } => {
                OutputLine::Send { conn: conn.0, frame: frame.to_string(), droppable: *droppable }
            }
            Output::Close { conn, code, reason } => {
                OutputLine::Close { conn: conn.0, code: *code, reason: reason.clone() }
            }
        }
    }
}

fn to_line<T: Serialize>(value: &T) -> String {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// Writes a recording while the server runs. A write error stops the recording (logged once);
/// it never stops the server.
pub struct Recorder {
    out: Option<BufWriter<File>>,
    with_outputs: bool,
    pseudonyms: Option<HashMap<IpAddr, IpAddr>>,
}

impl Recorder {
    /// Creates the file and writes the header.
    pub fn create(path: &Path, core: &CoreConfig, with_outputs: bool, addresses: AddressMode) -> io::Result<Recorder> {
        Recorder::create_restored(path, core, with_outputs, addresses, None)
    }

    /// Like [`create`](Recorder::create), for a core restored from `restored` before its first
    /// input. A pseudonymous recording leaves the saved state out: its user ids would not match.
    pub fn create_restored(
        path: &Path,
        core: &CoreConfig,
        with_outputs: bool,
        addresses: AddressMode,
        restored: Option<&Snapshot>,
    ) -> io::Result<Recorder> {
        let mut core = core.clone();
        if addresses == AddressMode::Pseudonymous {
            core.id_salt = "pseudonymous".to_string();
        }
        let header = Header {
            mppd_recording: FORMAT_VERSION,
            version: crate::VERSION.to_string(),
            addresses,
            outputs: with_outputs,
            core,
            restored: restored.filter(|_| addresses == AddressMode::Raw).cloned(),
        };
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "{}", to_line(&header))?;
        out.flush()?;
        let pseudonyms = (addresses == AddressMode::Pseudonymous).then(HashMap::new);
        Ok(Recorder { out: Some(out), with_outputs, pseudonyms })
    }

    fn write_line(&mut self, line: &str) {
        let Some(out) = self.out.as_mut() else { return };
        if let Err(e) = writeln!(out, "{line}") {
            log::error!("recording stopped: {e}");
            self.out = None;
        }
    }

    /// Records one input, just before the core handles it.
    pub fn input(&mut self, now: Millis, input: &Input<'_>) {
        let mut line = InputLine::from_input(now, input);
        if let (Some(map), InputLine::Open { ip, .. }) = (self.pseudonyms.as_mut(), &mut line) {
            let next = u32::try_from(map.len() + 1).unwrap_or(u32::MAX);
            *ip = *map.entry(*ip).or_insert_with(|| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (next & 0x00ff_ffff))));
        }
        self.write_line(&to_line(&line));
    }

    /// Records saved state loaded into the running core.
    pub fn restore(&mut self, now: Millis, snapshot: &Snapshot) {
        self.write_line(&to_line(&InputLine::Restore { at: now, snapshot: snapshot.clone() }));
    }

    /// Records one output of the last input, if outputs are recorded.
    pub fn output(&mut self, output: &Output) {
        if self.with_outputs {
            self.write_line(&to_line(&OutputLine::from_output(output)));
        }
    }

    /// Pushes buffered lines to the file (once per loop turn, so a kill loses at most a turn).
    pub fn flush(&mut self) {
        if let Some(out) = self.out.as_mut()
            && let Err(e) = out.flush()
        {
            log::error!("recording stopped: {e}");
            self.out = None;
        }
    }
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    Io(io::Error),
    /// The first line is not a recording header.
    BadHeader(String),
    /// The recording was written in another format version.
    Version {
        found: u32,
    },
    /// A line in the middle of the file is not valid.
    BadLine {
        line: usize,
        error: String,
    },
    /// `--check` on a recording without outputs.
    NoOutputs,
    /// The replayed outputs differ from the recorded ones.
    Mismatch {
        line: usize,
        expected: Option<String>,
        got: Option<String>,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Io(e) => write!(f, "cannot read the recording: {e}"),
            ReplayError::BadHeader(e) => write!(f, "line 1 is not an mppd recording header: {e}"),
            ReplayError::Version { found } => write!(
                f,
                "the recording has format version {found}; this mppd {} reads version {FORMAT_VERSION} only",
                crate::VERSION
            ),
            ReplayError::BadLine { line, error } => write!(f, "line {line} is not a valid input or output: {error}"),
            ReplayError::NoOutputs => write!(f, "the recording has no outputs to check (record with --record-output)"),
            ReplayError::Mismatch { line, expected, got } => write!(
                f,
                "outputs differ at line {line}\n  recorded: {}\n  replayed: {}",
                expected.as_deref().unwrap_or("(nothing)"),
                got.as_deref().unwrap_or("(nothing)")
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Io(e)
    }
}

/// What a finished replay saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    pub inputs: usize,
    pub outputs: usize,
    /// The line number of a truncated last line that was skipped (the server was killed).
    pub truncated_line: Option<usize>,
    /// With `check`: the line of the last input, when the recording ends before all of its
    /// outputs (the server was killed between two flushes); it was not checked.
    pub unfinished_input: Option<usize>,
}

/// Replays a recording: writes every output as a JSON line to `out`, or with `check` compares
/// them with the recorded outputs and stops at the first difference.
pub fn replay(reader: impl BufRead, check: bool, out: &mut impl Write) -> Result<ReplayReport, ReplayError> {
    let mut lines = LineReader { reader, number: 0 };
    let header_text = lines.next()?.ok_or_else(|| ReplayError::BadHeader("the file is empty".into()))?.0;
    let probe: serde_json::Value =
        serde_json::from_str(&header_text).map_err(|e| ReplayError::BadHeader(e.to_string()))?;
    let found = probe.get("mppd_recording").and_then(serde_json::Value::as_u64);
    match found {
        None => return Err(ReplayError::BadHeader("no `mppd_recording` version field".into())),
        Some(v) if v != u64::from(FORMAT_VERSION) => {
            return Err(ReplayError::Version { found: u32::try_from(v).unwrap_or(u32::MAX) });
        }
        Some(_) => {}
    }
    let header: Header = serde_json::from_value(probe).map_err(|e| ReplayError::BadHeader(e.to_string()))?;
    if check && !header.outputs {
        return Err(ReplayError::NoOutputs);
    }
    let mut core = Core::new(header.core);
    if let Some(snapshot) = header.restored {
        core.restore(snapshot);
    }
    let mut report = ReplayReport::default();
    // Outputs produced by the last input that the recording has not matched yet.
    let mut pending: std::collections::VecDeque<String> = Default::default();
    let mut last_input_line = 0;
    while let Some((text, complete)) = lines.next()? {
        let line = match serde_json::from_str::<Line>(&text) {
            Ok(line) => line,
            Err(_) if !complete => {
                report.truncated_line = Some(lines.number);
                break;
            }
            Err(e) => return Err(ReplayError::BadLine { line: lines.number, error: e.to_string() }),
        };
        match line {
            Line::Input(input) => {
                last_input_line = lines.number;
                if check && let Some(extra) = pending.pop_front() {
                    return Err(ReplayError::Mismatch { line: lines.number, expected: None, got: Some(extra) });
                }
                input.apply(&mut core);
                report.inputs += 1;
                while let Some(output) = core.poll_output() {
                    let text = to_line(&OutputLine::from_output(&output));
                    report.outputs += 1;
                    if check {
                        pending.push_back(text);
                    } else {
                        writeln!(out, "{text}")?;
                    }
                }
            }
            Line::Output(recorded) if check => {
                let expected = to_line(&recorded);
                match pending.pop_front() {
                    Some(got) if got == expected => {}
                    got => return Err(ReplayError::Mismatch { line: lines.number, expected: Some(expected), got }),
                }
            }
            Line::Output(_) => {}
        }
    }
    // Outputs still unmatched at the end belong to the last input: the server stopped before
    // they reached the file (a kill between two flushes). Everything before it was checked.
    if !pending.is_empty() && report.truncated_line.is_none() {
        report.unfinished_input = Some(last_input_line);
    }
    Ok(report)
}

/// Reads lines, telling whether each ended with a newline (a last line without one may be cut).
struct LineReader<R> {
    reader: R,
    number: usize,
}

impl<R: BufRead> LineReader<R> {
    fn next(&mut self) -> Result<Option<(String, bool)>, ReplayError> {
        loop {
            let mut text = String::new();
            if self.reader.read_line(&mut text)? == 0 {
                return Ok(None);
            }
            self.number += 1;
            let complete = text.ends_with('\n');
            let trimmed = text.trim_end_matches(['\n', '\r']);
            // Blank lines and `#` comments (for hand-written recordings) are skipped.
            if trimmed.trim().is_empty() || trimmed.trim_start().starts_with('#') {
                continue;
            }
            return Ok(Some((trimmed.to_string(), complete)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(outputs: bool) -> String {
        to_line(&Header {
            mppd_recording: FORMAT_VERSION,
            version: "test".into(),
            addresses: AddressMode::Raw,
            outputs,
            core: CoreConfig::default(),
            restored: None,
        })
    }

    #[test]
    fn replays_a_hand_written_session() {
        let text = format!(
            "{}\n{}\n{}\n",
            header(false),
            r#"{"in":"open","at":1000,"conn":1,"ip":"1.2.3.4"}"#,
            r#"{"in":"text","at":1001,"conn":1,"text":"[{\"m\":\"t\",\"e\":5}]"}"#
        );
        let mut out = Vec::new();
        let report = replay(text.as_bytes(), false, &mut out).unwrap();
        assert_eq!(report, ReplayReport { inputs: 2, outputs: 2, truncated_line: None, unfinished_input: None });
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            concat!(
                r#"{"out":"send","conn":1,"frame":"[{\"m\":\"b\",\"code\":\"~return true\"}]"}"#,
                "\n",
                r#"{"out":"send","conn":1,"frame":"[{\"m\":\"t\",\"t\":1001,\"e\":5}]"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let text = format!(
            "{}\n# a comment\n\n  # indented\n{}\n",
            header(false),
            r#"{"in":"open","at":1000,"conn":1,"ip":"1.2.3.4"}"#
        );
        let report = replay(text.as_bytes(), false, &mut io::sink()).unwrap();
        assert_eq!(report, ReplayReport { inputs: 1, outputs: 1, truncated_line: None, unfinished_input: None });
    }

    #[test]
    fn check_finds_the_first_difference() {
        let good = format!(
            "{}\n{}\n{}\n",
            header(true),
            r#"{"in":"open","at":1000,"conn":1,"ip":"1.2.3.4"}"#,
            r#"{"out":"send","conn":1,"frame":"[{\"m\":\"b\",\"code\":\"~return true\"}]"}"#
        );
        assert!(replay(good.as_bytes(), true, &mut io::sink()).is_ok());
        let bad = good.replace("return true", "return false");
        match replay(bad.as_bytes(), true, &mut io::sink()) {
            Err(ReplayError::Mismatch { line: 3, expected: Some(e), got: Some(g) }) => {
                assert!(e.contains("return false") && g.contains("return true"));
            }
            other => panic!("{other:?}"),
        }
        let missing = format!("{}\n{}\n", header(true), r#"{"in":"open","at":1000,"conn":1,"ip":"1.2.3.4"}"#);
        // Outputs missing after the last input: the server was killed before writing them.
        let report = replay(missing.as_bytes(), true, &mut io::sink()).unwrap();
        assert_eq!(report.unfinished_input, Some(2));
        // Outputs missing before a later input are a real difference.
        let gap = format!("{missing}{}\n", r#"{"in":"tick","at":2000}"#);
        assert!(matches!(replay(gap.as_bytes(), true, &mut io::sink()), Err(ReplayError::Mismatch { .. })));
        assert!(replay(missing.as_bytes(), false, &mut io::sink()).is_ok());
        let no_outputs = format!("{}\n", header(false));
        assert!(matches!(replay(no_outputs.as_bytes(), true, &mut io::sink()), Err(ReplayError::NoOutputs)));
    }

    #[test]
    fn truncated_last_line_is_reported_and_the_rest_replays() {
        let text = format!(
            "{}\n{}\n{}",
            header(false),
            r#"{"in":"open","at":1000,"conn":1,"ip":"1.2.3.4"}"#,
            r#"{"in":"text","at":1001,"conn":1,"te"#
        );
        let report = replay(text.as_bytes(), false, &mut io::sink()).unwrap();
        assert_eq!(report, ReplayReport { inputs: 1, outputs: 1, truncated_line: Some(3), unfinished_input: None });
        // The same damage in the middle of the file is an error.
        let middle = format!("{text}\n{}\n", r#"{"in":"tick","at":2000}"#);
        assert!(matches!(replay(middle.as_bytes(), false, &mut io::sink()), Err(ReplayError::BadLine { line: 3, .. })));
    }

    #[test]
    fn other_versions_and_garbage_are_refused_clearly() {
        let newer = header(false).replace("\"mppd_recording\":1", "\"mppd_recording\":2");
        let err = replay(newer.as_bytes(), false, &mut io::sink()).unwrap_err();
        assert!(matches!(err, ReplayError::Version { found: 2 }));
        assert!(err.to_string().contains("format version 2"));
        assert!(matches!(replay("hello\n".as_bytes(), false, &mut io::sink()), Err(ReplayError::BadHeader(_))));
        assert!(matches!(replay("".as_bytes(), false, &mut io::sink()), Err(ReplayError::BadHeader(_))));
    }

    #[test]
    fn pseudonymous_recorder_hides_addresses_and_salt() {
        let dir = std::env::temp_dir().join(format!("mppd-record-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.jsonl");
        let config = CoreConfig { id_salt: "secret".into(), ..CoreConfig::default() };
        let mut rec = Recorder::create(&path, &config, false, AddressMode::Pseudonymous).unwrap();
        for ip in ["203.0.113.9", "198.51.100.7", "203.0.113.9"] {
            rec.input(Millis::from_ms(5), &Input::Open { conn: ConnId(1), peer: PeerInfo { ip: ip.parse().unwrap() } });
        }
        rec.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret") && !text.contains("203.0.113.9") && !text.contains("198.51.100.7"));
        assert_eq!(text.matches("10.0.0.1").count(), 2);
        assert_eq!(text.matches("10.0.0.2").count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
