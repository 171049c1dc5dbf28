//! The client's address behind reverse proxies (`TRUSTED_PROXIES`).
//!
//! The TCP peer is the client unless it is a trusted proxy; then `X-Forwarded-For` is
//! read from the right (each proxy appends the address it received from), skipping
//! trusted proxies, and the first address that is not one is the client. Anything left
//! of it was written by the client and is never believed. An entry that is no address
//! stops the walk at the last proxy we trust. IPv4-mapped IPv6 addresses (what a
//! dual-stack socket reports) count as IPv4.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The address per-address limits and logs use, set on every request by `request_context`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// An entry of `TRUSTED_PROXIES` that is neither a network nor an address.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a CIDR (like 10.0.0.0/8) or an IP address")]
pub struct NotANetwork(pub String);

/// The networks whose `X-Forwarded-For` is believed; empty (the default) believes none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated CIDRs (`10.0.0.0/8`, `::1/128`) or single addresses.
    pub fn parse(list: &str) -> Result<Self, NotANetwork> {
        let networks = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|network| network.trunc())
                    .map_err(|_| NotANetwork(entry.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(networks))
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|network| network.contains(&address))
    }

    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer.to_canonical();
        }
        let mut nearest = peer.to_canonical();
        for entry in forwarded_for(headers).into_iter().rev() {
            let Ok(address) = entry.parse::<IpAddr>().map(|address| address.to_canonical()) else { return nearest };
            if !self.trusts(address) {
                return address;
            }
            nearest = address;
        }
        nearest
    }
}

/// Every `X-Forwarded-For` entry, in order, over all its header lines; a line that is
/// not text counts as one unreadable entry.
fn forwarded_for(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(text) => text.split(',').map(str::trim).collect(),
            Err(_) => vec![""],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn with_forwarded_for(lines: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_bytes(line).unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let headers = with_forwarded_for(&[b"1.1.1.1"]);
        assert_eq!(trusted.client_ip(ip("203.0.113.9"), &headers), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client_ip(ip("127.0.0.1"), &headers), ip("127.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8, 192.168.1.7 ,::1/128").unwrap();
        // The client claimed 6.6.6.6; the first proxy appended the address it saw.
        let headers = with_forwarded_for(&[b"6.6.6.6, 198.51.100.4", b"10.1.2.3"]);
        assert_eq!(trusted.client_ip(ip("192.168.1.7"), &headers), ip("198.51.100.4"));
        assert_eq!(trusted.client_ip(ip("::1"), &with_forwarded_for(&[b"2001:db8::5"])), ip("2001:db8::5"));
        assert_eq!(trusted.client_ip(ip("::ffff:10.0.0.1"), &with_forwarded_for(&[b"198.51.100.4"])), ip("198.51.100.4"));
    }

    #[test]
    fn no_or_only_trusted_or_unreadable_entries_stop_at_the_nearest_trusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &with_forwarded_for(&[b"10.9.9.9"])), ip("10.9.9.9"));
        for bad in [&b"6.6.6.6, not-an-ip"[..], b"6.6.6.6, 1.2.3.4:80", b"6.6.6.6,", b"\xff"] {
            assert_eq!(trusted.client_ip(ip("10.0.0.1"), &with_forwarded_for(&[bad])), ip("10.0.0.1"), "{bad:?}");
        }
    }

    #[test]
    fn bad_lists_are_refused_with_the_entry() {
        assert_eq!(TrustedProxies::parse("").unwrap(), TrustedProxies::default());
        assert!(TrustedProxies::parse("10.0.0.0/33").unwrap_err().to_string().contains("10.0.0.0/33"));
        assert_eq!(TrustedProxies::parse("10.0.0.0/8, localhost").unwrap_err(), NotANetwork("localhost".into()));
        assert_eq!(TrustedProxies::parse("10.1.2.3/8").unwrap(), TrustedProxies::parse("10.0.0.0/8").unwrap());
    }

    proptest::proptest! {
        /// Any X-Forwarded-For lines: the client is the peer or one of the entries, never
        /// a panic; an untrusted peer is always itself.
        #[test]
        fn the_client_is_the_peer_or_a_forwarded_entry(lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..4), peer_trusted in proptest::bool::ANY) {
            let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
            let peer: IpAddr = if peer_trusted { "10.1.2.3" } else { "203.0.113.9" }.parse().unwrap();
            let mut headers = HeaderMap::new();
            for line in lines.iter().filter_map(|line| axum::http::HeaderValue::from_bytes(line).ok()) {
                headers.append("x-forwarded-for", line);
            }
            let client = proxies.client_ip(peer, &headers);
            let entries: Vec<IpAddr> = forwarded_for(&headers).iter().filter_map(|e| e.parse::<IpAddr>().ok()).map(|a| a.to_canonical()).collect();
            proptest::prop_assert!(client == peer || (peer_trusted && entries.contains(&client)));
        }
    }
}
