//! Which RTMP servers a broadcast may reach.
//!
//! A broadcast's URL comes from whoever runs the meeting (plugNmeet lets moderators type one
//! in), and the recorder connects to it from inside the operator's network. So a job may not
//! point the recorder at that network: a target that is, or resolves to, a loopback, private,
//! link-local, shared, multicast or otherwise non-public address is refused, unless
//! `[broadcast] allowed_networks` lists its network (an operator's own RTMP relay, or the tests'
//! nginx on loopback).
//!
//! The check runs when the job is accepted, and the worker connects to the addresses it
//! checked, not to a fresh answer for the name ([`pin`]): a name whose answer changes in
//! between (DNS rebinding) cannot lead the broadcast anywhere else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::IpNet;

use crate::job::InvalidJob;

pub mod pin;

/// How long resolving a target's name may take before the job is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Refuses `url` (an `rtmp://` or `rtmps://` URL that passed [`crate::job::StartRequest::check`])
/// unless every address it names or resolves to is public or inside `allowed`. Returns those
/// addresses, for the worker to connect to ([`pin_rtmp_host`]).
pub async fn check_rtmp_target(url: &str, allowed: &[IpNet]) -> Result<Vec<IpAddr>, InvalidJob> {
    let invalid = |m: String| Err(InvalidJob(m));
    let Ok(parsed) = url::Url::parse(url) else {
        return invalid("rtmp_url must be an rtmp:// or rtmps:// URL".into());
    };
    let port = parsed.port().unwrap_or(if parsed.scheme() == "rtmps" {
        443
    } else {
        1935
    });
    let addresses: Vec<IpAddr> = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => {
            // getaddrinfo also reads numeric forms such as `2130706433` or `0x7f.1`, as
            // rtmp2sink's resolver will: what is checked is what it connects to.
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await
            {
                Ok(Ok(found)) => found.map(|socket| socket.ip()).collect(),
                Ok(Err(_)) | Err(_) => {
                    return invalid(format!("rtmp_url host {name} does not resolve"))
                }
            }
        }
        None => return invalid("rtmp_url must name a host".into()),
    };
    if addresses.is_empty() {
        return invalid("rtmp_url host does not resolve".into());
    }
    match addresses
        .iter()
        .find(|&&ip| !is_public(ip) && !allowed.iter().any(|net| net.contains(&ip)))
    {
        Some(ip) => invalid(format!(
            "rtmp_url points at {ip}, which is not a public address; an operator can allow \
             its network in [broadcast] allowed_networks"
        )),
        None => Ok(addresses),
    }
}

/// In a worker: makes this process answer `url`'s host name with `checked` (what
/// [`check_rtmp_target`] returned when the job was accepted) instead of asking DNS again. A
/// URL whose host is an address needs no pin.
pub fn pin_rtmp_host(url: &str, checked: &[IpAddr]) -> Result<(), pin::PinError> {
    match url::Url::parse(url).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(name)) => pin::pin(name, checked),
        _ => Ok(()),
    }
}

/// Whether `ip` is an address on the public internet, as far as this recorder is concerned.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not the public internet (IANA's special-purpose registry).
const NOT_PUBLIC_V4: &[&str] = &[
    "0.0.0.0/8",       // "this network"
    "10.0.0.0/8",      // private
    "100.64.0.0/10",   // carrier-grade NAT
    "127.0.0.0/8",     // loopback
    "169.254.0.0/16",  // link-local, cloud metadata services
    "172.16.0.0/12",   // private
    "192.0.0.0/24",    // IETF protocol assignments
    "192.0.2.0/24",    // documentation
    "192.88.99.0/24",  // 6to4 relays
    "192.168.0.0/16",  // private
    "198.18.0.0/15",   // benchmarking
    "198.51.100.0/24", // documentation
    "203.0.113.0/24",  // documentation
    "224.0.0.0/4",     // multicast
    "240.0.0.0/4",     // reserved, broadcast
];

/// IPv6 ranges that are not the public internet. Ranges that embed an IPv4 address (mapped,
/// NAT64, 6to4) are judged by that address instead.
const NOT_PUBLIC_V6: &[&str] = &[
    "::/127",         // unspecified, loopback
    "64:ff9b:1::/48", // local NAT64
    "100::/64",       // discard
    "2001::/23",      // IETF protocol assignments, Teredo
    "2001:db8::/32",  // documentation
    "fc00::/7",       // unique local
    "fe80::/10",      // link-local
    "fec0::/10",      // site-local (deprecated)
    "ff00::/8",       // multicast
];

/// [`NOT_PUBLIC_V4`] and [`NOT_PUBLIC_V6`], parsed once.
static NOT_PUBLIC: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    NOT_PUBLIC_V4
        .iter()
        .chain(NOT_PUBLIC_V6)
        .filter_map(|range| range.parse().ok())
        .collect()
});

fn in_reserved_range(ip: IpAddr) -> bool {
    NOT_PUBLIC.iter().any(|net| net.contains(&ip))
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !in_reserved_range(IpAddr::V4(ip))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [a, b, c, d, e, f, g, h] = ip.segments();
    let embedded = |high: u16, low: u16| {
        Ipv4Addr::new(
            (high >> 8) as u8,
            (high & 0xff) as u8,
            (low >> 8) as u8,
            (low & 0xff) as u8,
        )
    };
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // NAT64 (64:ff9b::/96): the last 32 bits.
    if [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded(g, h));
    }
    // 6to4 (2002::/16): bits 16 to 48.
    if a == 0x2002 {
        return is_public_v4(embedded(b, c));
    }
    !in_reserved_range(IpAddr::V6(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn every_range_parses() {
        for range in NOT_PUBLIC_V4.iter().chain(NOT_PUBLIC_V6) {
            assert!(range.parse::<IpNet>().is_ok(), "{range}");
        }
    }

    #[test]
    fn only_public_addresses_are_public() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "203.0.114.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(public)), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip(private)), "{private}");
        }
    }

    #[tokio::test]
    async fn targets_are_judged_by_what_they_resolve_to() {
        let none: &[IpNet] = &[];
        for refused in [
            "rtmp://127.0.0.1/live/key",
            "rtmp://[::1]:1935/live/key",
            "rtmp://[::ffff:7f00:1]/live/key",
            "rtmp://169.254.169.254/latest",
            "rtmp://localhost/live/key",
            // Numeric forms getaddrinfo reads as 127.0.0.1.
            "rtmp://2130706433/live/key",
            "rtmp://0x7f.1/live/key",
        ] {
            let refusal = check_rtmp_target(refused, none).await;
            assert!(refusal.is_err(), "{refused} accepted");
        }
        let message = check_rtmp_target("rtmp://10.0.0.7/live/secret-key", none)
            .await
            .expect_err("private");
        assert!(message.0.contains("10.0.0.7"), "{message}");
        assert!(!message.0.contains("secret-key"), "{message}");
        assert!(check_rtmp_target("rtmp://8.8.8.8/live/key", none)
            .await
            .is_ok());
        let loopback: Vec<IpNet> = ["127.0.0.0/8", "::1/128"]
            .iter()
            .map(|net| net.parse().expect("net"))
            .collect();
        // What was checked is what the worker will connect to.
        assert_eq!(
            check_rtmp_target("rtmp://127.0.0.1:1935/live/key", &loopback)
                .await
                .expect("allowed"),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        let by_name = check_rtmp_target("rtmp://localhost:1935/live/key", &loopback)
            .await
            .expect("allowed");
        assert!(
            by_name.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{by_name:?}"
        );
        assert!(check_rtmp_target("rtmp://10.0.0.7/live/key", &loopback)
            .await
            .is_err());
    }
}
