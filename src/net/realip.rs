//! The real client address behind reverse proxies, with the semantics of nginx's realip module
//! and `real_ip_recursive on`: `X-Forwarded-For` is believed only when the direct peer is a
//! configured trusted proxy, and then only as far as the chain of trusted proxies goes.
//!
//! Pure: no sockets, no configuration lookups. The event loop hands in the peer, the header
//! values and the trusted networks.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An IPv4 or IPv6 network such as `10.0.0.0/8`, `2001:db8::/32`, or one address (`::1`).
///
/// Written and parsed as text, so it reads naturally in configuration and on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpCidr {
    network: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// `127.0.0.0/8`.
    pub const LOOPBACK_V4: IpCidr = IpCidr { network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 };
    /// `::1/128`.
    pub const LOOPBACK_V6: IpCidr = IpCidr { network: IpAddr::V6(Ipv6Addr::LOCALHOST), prefix: 128 };

    /// The network of `addr` with `prefix` leading bits; host bits are cleared. An IPv4-mapped
    /// IPv6 network (`::ffff:a.b.c.d/104`) becomes the IPv4 network it describes.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpCidr, String> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                (IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED)), prefix - 96)
            }
            other => (other, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max} bits"));
        }
        Ok(IpCidr { network: mask(addr, prefix), prefix })
    }

    /// Whether `ip` (canonicalised: `::ffff:1.2.3.4` is `1.2.3.4`) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

/// `addr` with every bit after the first `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & keep))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

impl FromStr for IpCidr {
    type Err = String;

    fn from_str(text: &str) -> Result<IpCidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr =
            addr.parse().map_err(|_| format!("expected an address or network like 10.0.0.0/8, got {text:?}"))?;
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| format!("bad prefix length in {text:?}"))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        IpCidr::new(addr, prefix).map_err(|e| format!("{text:?}: {e}"))
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for IpCidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpCidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IpCidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `ip` is in any of `networks`.
pub fn is_in(networks: &[IpCidr], ip: IpAddr) -> bool {
    networks.iter().any(|n| n.contains(ip))
}

/// The client's address: the socket `peer`, or, when `peer` is a trusted proxy, the rightmost
/// `X-Forwarded-For` hop that is not itself trusted (the leftmost hop when all are). Every
/// header value is taken in order, as one comma-separated list. An unparseable hop stops the
/// walk at the last good address. The result is canonical (`::ffff:1.2.3.4` → `1.2.3.4`).
pub fn real_client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpCidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_in(trusted, peer) {
        return peer;
    }
    let values: Vec<&[u8]> = forwarded_for.into_iter().collect();
    let hops = values
        .iter()
        .rev()
        .flat_map(|value| value.rsplit(|&b| b == b','))
        .map(|hop| hop.trim_ascii())
        .filter(|hop| !hop.is_empty());
    let mut addr = peer;
    for hop in hops {
        let Some(hop) = parse_hop(hop) else { break };
        addr = hop;
        if !is_in(trusted, addr) {
            break;
        }
    }
    addr
}

/// One `X-Forwarded-For` hop: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner.parse::<Ipv6Addr>().ok().map(|v6| IpAddr::V6(v6).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpCidr> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn real(peer: &str, headers: &[&str], trusted: &[&str]) -> IpAddr {
        real_client_ip(ip(peer), headers.iter().map(|h| h.as_bytes()), &nets(trusted))
    }

    #[test]
    fn networks_parse_print_and_match() {
        let net: IpCidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::a00:1")));
        let one: IpCidr = "::1".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let v6: IpCidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let all: IpCidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::2")));
        let mapped: IpCidr = "::ffff:192.168.0.0/112".parse().unwrap();
        assert_eq!(mapped.to_string(), "192.168.0.0/16");
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0.0/x", "host", "10.0.0.0/8/8", "1.2.3.4:80"] {
            assert!(bad.parse::<IpCidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn networks_round_trip_through_serde() {
        let list = nets(&["127.0.0.1", "fd00::/8"]);
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["127.0.0.1/32","fd00::/8"]"#);
        assert_eq!(serde_json::from_str::<Vec<IpCidr>>(&json).unwrap(), list);
        assert!(serde_json::from_str::<Vec<IpCidr>>(r#"["nope"]"#).is_err());
    }

    #[test]
    fn untrusted_peers_are_never_overridden() {
        assert_eq!(real("1.2.3.4", &["5.6.7.8"], &[]), ip("1.2.3.4"));
        assert_eq!(real("1.2.3.4", &["5.6.7.8"], &["10.0.0.0/8"]), ip("1.2.3.4"));
        assert_eq!(real("::ffff:1.2.3.4", &["5.6.7.8"], &["10.0.0.0/8"]), ip("1.2.3.4"));
    }

    #[test]
    fn a_trusted_peer_yields_the_last_untrusted_hop() {
        let trusted = ["10.0.0.0/8", "::1"];
        assert_eq!(real("10.0.0.1", &["5.6.7.8"], &trusted), ip("5.6.7.8"));
        // The client may send anything on the left; only the hop our proxy appended counts.
        assert_eq!(real("10.0.0.1", &["9.9.9.9, 5.6.7.8"], &trusted), ip("5.6.7.8"));
        // Chains of trusted proxies are walked through.
        assert_eq!(real("::1", &["9.9.9.9, 5.6.7.8, 10.0.0.2,10.0.0.3"], &trusted), ip("5.6.7.8"));
        // Several headers form one list, in order.
        assert_eq!(real("10.0.0.1", &["9.9.9.9", "5.6.7.8, 10.0.0.9"], &trusted), ip("5.6.7.8"));
        assert_eq!(real("::ffff:10.0.0.1", &["2001:db8::7"], &trusted), ip("2001:db8::7"));
    }

    #[test]
    fn odd_headers_fall_back_like_nginx() {
        let trusted = ["10.0.0.0/8"];
        // No header or an empty one: the peer.
        assert_eq!(real("10.0.0.1", &[], &trusted), ip("10.0.0.1"));
        assert_eq!(real("10.0.0.1", &[" , ,"], &trusted), ip("10.0.0.1"));
        // Every hop trusted: the leftmost.
        assert_eq!(real("10.0.0.1", &["10.0.0.5, 10.0.0.6"], &trusted), ip("10.0.0.5"));
        // Garbage stops the walk at the last good address.
        assert_eq!(real("10.0.0.1", &["5.6.7.8, junk"], &trusted), ip("10.0.0.1"));
        assert_eq!(real("10.0.0.1", &["junk, 10.0.0.7"], &trusted), ip("10.0.0.7"));
        assert_eq!(real("10.0.0.1", &["\u{ff}\u{fe}"], &trusted), ip("10.0.0.1"));
        // Ports and brackets are tolerated.
        assert_eq!(real("10.0.0.1", &["5.6.7.8:1234"], &trusted), ip("5.6.7.8"));
        assert_eq!(real("10.0.0.1", &["[2001:db8::1]:80"], &trusted), ip("2001:db8::1"));
        assert_eq!(real("10.0.0.1", &["[2001:db8::1]"], &trusted), ip("2001:db8::1"));
        assert_eq!(real("10.0.0.1", &["::ffff:5.6.7.8"], &trusted), ip("5.6.7.8"));
    }
}
