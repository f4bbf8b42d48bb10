//! The host's interface addresses, for the startup banner's URLs.

use std::net::IpAddr;

/// Addresses of the interfaces that are up (IPv4 and IPv6, loopback
/// included; IPv6 link-local left out: a URL cannot carry its scope simply).
pub fn interface_addrs() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = crate::sys::interface_addrs()
        .into_iter()
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 != 0xfe80,
        })
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed() {
        let addrs = super::interface_addrs();
        assert!(addrs.iter().any(|a| a.is_loopback()), "{addrs:?}");
    }
}
