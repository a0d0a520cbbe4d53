//! Arbitrary bytes as an HTTP request head into the shell's head reader, the way a client's
//! first bytes reach it: it never panics, it only ever refuses with 400 or 431, the outcome
//! does not depend on how the bytes are split across reads, and the client address taken from
//! `X-Forwarded-For` is the peer unless the peer is a trusted proxy.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mppd::net::{HeadOutcome, IpCidr, parse_request_head, parse_request_head_chunks, real_client_ip};
use std::net::IpAddr;

/// The outcome without `leftover`, which depends on where the reads happened to stop.
fn shape(outcome: HeadOutcome) -> HeadOutcome {
    match outcome {
        HeadOutcome::Upgrade { path, origin, forwarded_for, .. } => {
            HeadOutcome::Upgrade { path, origin, forwarded_for, leftover: 0 }
        }
        other => other,
    }
}

/// A hop's address as the fuzz target reads it, independently of the shell's parser.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))?;
    Some(ip.to_canonical())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let whole = parse_request_head(bytes);
    let at = usize::from(split) * bytes.len() / 256;
    let (a, b) = bytes.split_at(at);
    let parts = parse_request_head_chunks(&[a, b], 8192, false);
    assert_eq!(shape(whole.clone()), shape(parts), "split at {at}");
    let closed = parse_request_head_chunks(&[bytes], 8192, true);
    match (&whole, &closed) {
        (HeadOutcome::Incomplete, HeadOutcome::Gone) => {}
        (w, c) => assert_eq!(shape(w.clone()), shape(c.clone())),
    }
    // A tiny cap never lets a longer head through.
    if let HeadOutcome::Upgrade { .. } = parse_request_head_chunks(&[bytes], 64, false) {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        assert!(end.is_some_and(|end| end <= 64), "a head over the cap was accepted");
    }
    match whole {
        HeadOutcome::Reject(status) => assert!(matches!(status, 400 | 431), "refused with {status}"),
        HeadOutcome::Upgrade { forwarded_for, .. } => {
            let hops = || forwarded_for.iter().map(Vec::as_slice);
            let stranger: IpAddr = "203.0.113.9".parse().unwrap();
            let proxy: IpAddr = "10.0.0.1".parse().unwrap();
            let trusted: Vec<IpCidr> = vec!["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
            assert_eq!(real_client_ip(stranger, hops(), &trusted), stranger);
            let real = real_client_ip(proxy, hops(), &trusted);
            if real != proxy {
                // It came from the header: some hop names it (as an address, with a port, or
                // bracketed; written in any of an address's textual forms).
                let named = forwarded_for
                    .iter()
                    .flat_map(|value| value.split(|&b| b == b','))
                    .filter_map(|hop| std::str::from_utf8(hop.trim_ascii()).ok())
                    .filter_map(hop_address)
                    .any(|ip| ip == real);
                assert!(named, "{real} from {forwarded_for:?}");
            }
        }
        HeadOutcome::Plain { .. } | HeadOutcome::Incomplete | HeadOutcome::Gone => {}
    }
});
