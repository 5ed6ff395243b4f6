//! Where argomap may connect, whatever `spec.url` says: the operator's `--deny-url-cidrs`.
//! Whoever may write an ArgoCdInstance chooses the URL; without a policy argomap would reach
//! its own pod (loopback), the cloud's metadata service (link-local) or anything else its
//! network can. The check is on the addresses a name resolves to, at every connection (a name
//! that resolved to an allowed address once and to a denied one later is refused then), and
//! on an address written in the URL.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Default of `--deny-url-cidrs`: loopback, link-local (cloud metadata services) and the
/// unspecified address (which Linux connects to loopback).
pub const DEFAULT_DENIED: &str = "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,0.0.0.0/32,::/128";

/// The networks argomap never connects to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    denied: Arc<[IpNet]>,
}

impl UrlPolicy {
    /// `a.b.c.d/n` or IPv6 CIDRs, comma-separated; empty: none denied.
    pub fn parse(s: &str) -> Result<Self, String> {
        let denied = s
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<IpNet>().map_err(|e| format!("{c:?} is not a CIDR: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UrlPolicy { denied: denied.into() })
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address taken as its IPv4) is in a denied network.
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.denied.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.denied.is_empty()
    }
}

/// The message of a refused address: it names the flag, not the address.
pub const DENIED: &str = "its address is in a network argomap may not connect to (--deny-url-cidrs)";

/// Every resolved name's addresses, the denied ones dropped; none left is an error.
#[derive(Debug)]
pub(super) struct Resolver {
    pub policy: UrlPolicy,
}

/// All of a name's addresses are denied.
#[derive(Debug, thiserror::Error)]
#[error("{DENIED}")]
pub(super) struct Denied;

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| !policy.denies(a.ip())).collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(Box::new(Denied) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_denies_loopback_link_local_and_unspecified_in_both_families() {
        let p = UrlPolicy::parse(DEFAULT_DENIED).expect("default");
        for denied in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(p.denies(denied.parse().expect("ip")), "{denied}");
        }
        for allowed in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1", "::ffff:10.0.0.1"] {
            assert!(!p.denies(allowed.parse().expect("ip")), "{allowed}");
        }
    }

    #[test]
    fn an_empty_policy_denies_nothing_and_a_bad_cidr_is_refused() {
        let none = UrlPolicy::parse("").expect("empty");
        assert!(none.is_empty() && !none.denies("127.0.0.1".parse().expect("ip")));
        let service = UrlPolicy::parse(" 10.96.0.0/12 , ").expect("one");
        assert!(service.denies("10.96.0.10".parse().expect("ip")));
        assert!(UrlPolicy::parse("10.0.0.0/33").is_err());
        assert!(UrlPolicy::parse("localhost").is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_denied_addresses_is_refused() {
        let r = Resolver { policy: UrlPolicy::parse(DEFAULT_DENIED).expect("default") };
        let e = r.resolve("localhost".parse().expect("name")).await.err().expect("denied");
        assert_eq!(e.to_string(), DENIED);
        let open = Resolver { policy: UrlPolicy::default() };
        let addrs: Vec<SocketAddr> =
            open.resolve("localhost".parse().expect("name")).await.expect("resolves").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
