//! The client side of RFC 6455, reduced to what the generator needs: the upgrade request,
//! masked frames out, unmasked server frames in. No extensions, no fragmentation on send.

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The HTTP upgrade request. The key is fixed: the server only has to echo its hash, which the
/// generator does not check (it talks to a server it started itself).
pub fn upgrade_request(host: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Result of looking at the bytes received after the upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// The head is not complete yet.
    Partial,
    /// `101 Switching Protocols`; frames start after this many bytes.
    Switched(usize),
    /// Any other status line.
    Refused(String),
}

pub fn parse_upgrade_response(buf: &[u8]) -> Upgrade {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Upgrade::Partial;
    };
    let head = &buf[..end];
    let line_end = memchr::memchr(b'\r', head).unwrap_or(head.len());
    let status = &head[..line_end];
    if status.starts_with(b"HTTP/1.1 101") {
        Upgrade::Switched(end + 4)
    } else {
        Upgrade::Refused(String::from_utf8_lossy(status).into_owned())
    }
}

/// Appends one complete masked frame to `out` (which keeps its capacity between calls).
pub fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// One frame received from the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Parses the frame at the start of `buf`: `Ok(None)` when more bytes are needed, otherwise the
/// frame and how many bytes it took. Server frames must not be masked.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let opcode = buf[0] & 0x0F;
    if buf[1] & 0x80 != 0 {
        return Err("masked frame from server");
    }
    let (len, header) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (n as u64, 2),
    };
    if len > (64 << 20) {
        return Err("frame over 64 MiB");
    }
    let total = header + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((Frame { opcode, payload: &buf[header..total] }, total)))
}

/// The status code of a close frame's payload, if it has one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        let (len, mut pos) = match frame[1] & 0x7F {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            127 => (u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        let mask = [frame[pos], frame[pos + 1], frame[pos + 2], frame[pos + 3]];
        pos += 4;
        let data = frame[pos..pos + len].iter().enumerate().map(|(i, b)| b ^ mask[i & 3]).collect();
        (frame[0], data)
    }

    #[test]
    fn frames_round_trip_at_every_length_class() {
        for len in [0usize, 5, 125, 126, 200, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, OP_TEXT, &payload, [1, 2, 3, 4]);
            assert!(out[1] & 0x80 != 0, "client frames are masked");
            let (b0, data) = unmask(&out);
            assert_eq!(b0, 0x81);
            assert_eq!(data, payload);
        }
    }

    #[test]
    fn server_frames_parse_and_wait_for_more() {
        let mut buf = vec![0x81, 126, 0, 130];
        buf.extend(std::iter::repeat_n(b'x', 130));
        buf.extend_from_slice(&[0x89, 0]);
        assert_eq!(parse_frame(&buf[..3]), Ok(None));
        assert_eq!(parse_frame(&buf[..100]), Ok(None));
        let (f, used) = parse_frame(&buf).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.len(), used), (OP_TEXT, 130, 134));
        let (f, used) = parse_frame(&buf[134..]).unwrap().unwrap();
        assert_eq!((f.opcode, f.payload.len(), used), (OP_PING, 0, 2));
        assert!(parse_frame(&[0x81, 0x85, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn upgrade_response() {
        assert_eq!(parse_upgrade_response(b"HTTP/1.1 101 Sw"), Upgrade::Partial);
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(parse_upgrade_response(ok), Upgrade::Switched(ok.len() - 2));
        assert_eq!(
            parse_upgrade_response(b"HTTP/1.1 429 Too Many Requests\r\n\r\n"),
            Upgrade::Refused("HTTP/1.1 429 Too Many Requests".into())
        );
    }
}
