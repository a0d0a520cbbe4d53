//! What the shell tells the core about a peer: its address, canonicalised.
//!
//! An IPv4 client reaching a dual-stack listener shows up as `::ffff:1.2.3.4`; it must get the
//! same user id as over IPv4, so mapped addresses are turned back into `1.2.3.4`.

use crate::core::PeerInfo;
use std::net::IpAddr;

/// The core's view of a peer connected from `ip`.
pub(super) fn peer_info(ip: IpAddr) -> PeerInfo {
    PeerInfo { ip: ip.to_canonical() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn mapped_ipv4_becomes_ipv4() {
        let mapped = IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
        assert_eq!(peer_info(mapped).ip, IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn plain_addresses_are_kept() {
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        assert_eq!(peer_info(v6).ip, v6);
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(peer_info(v4).ip, v4);
    }
}
