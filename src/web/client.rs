//! The client's address, resolved once per request by [`resolve`] and read through
//! [`ClientAddr`]: the TCP peer, unless the peer is a trusted proxy (`auth.trusted_proxies`,
//! loopback when empty) and `auth.remote_ip.trusted_remote_ip_header` is set; then that header
//! (`X-Forwarded-For` style, appended to by each proxy) read from the right, and the first
//! address that is not a trusted proxy is the client. Entries left of it were written by the
//! client itself and are never believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;
use crate::config::Config;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer (a proxy, or the client itself). `None` without a socket (handler tests).
    pub peer: Option<IpAddr>,
    /// The client as far as trusted proxies tell.
    pub client: Option<IpAddr>,
}

impl ClientAddr {
    /// The rate-limit key of this client.
    pub fn key(&self) -> String {
        self.client
            .map(|ip| ip.to_canonical().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Whether the TCP peer is a trusted proxy (header sign-in is accepted only from one).
    pub fn peer_is_trusted(&self, config: &Config) -> bool {
        self.peer.is_some_and(|ip| config.trusts_proxy(ip))
    }
}

/// The client address of a request from `peer` with `headers`.
pub fn client_of(config: &Config, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?;
    let Some(name) = config
        .auth
        .remote_ip
        .trusted_remote_ip_header
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Some(peer);
    };
    if !config.trusts_proxy(peer) {
        return Some(peer);
    }
    // Every value of the header, in order, as one list (proxies may add lines or append).
    let hops: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage where an address should be: nothing left of it can be believed.
            break;
        };
        client = ip;
        if !config.trusts_proxy(ip) {
            break;
        }
    }
    Some(client)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Puts the [`ClientAddr`] in the request extensions.
pub async fn resolve(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let client = client_of(&state.config, peer, req.headers());
    req.extensions_mut().insert(ClientAddr { peer, client });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(header: bool, proxies: &[&str]) -> Config {
        let mut c = Config::default();
        if header {
            c.auth.remote_ip.trusted_remote_ip_header = Some("X-Forwarded-For".into());
        }
        c.auth.trusted_proxies = proxies.iter().map(|p| p.parse().expect("cidr")).collect();
        c
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("value"));
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn without_the_header_setting_the_peer_is_the_client() {
        let c = config(false, &["10.0.0.0/8"]);
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["1.2.3.4"])),
            ip("10.0.0.5")
        );
        assert_eq!(client_of(&c, None, &xff(&["1.2.3.4"])), None);
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let c = config(true, &["10.0.0.0/8"]);
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["1.2.3.4"])),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_of(&c, ip("203.0.113.9"), &xff(&["1.2.3.4"])),
            ip("203.0.113.9"),
            "a client cannot name its own address"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let c = config(true, &["10.0.0.0/8"]);
        // The client forged the first entry; the ALB appended the real one.
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["6.6.6.6, 1.2.3.4, 10.1.1.1"])),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["6.6.6.6", "1.2.3.4:5555"])),
            ip("1.2.3.4"),
            "several header lines are one list; ports are dropped"
        );
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["10.2.2.2, 10.3.3.3"])),
            ip("10.2.2.2"),
            "all trusted: the left-most"
        );
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &xff(&["1.2.3.4, garbage, 10.3.3.3"])),
            ip("10.3.3.3"),
            "garbage stops the walk"
        );
        assert_eq!(
            client_of(&c, ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn loopback_is_the_default_proxy() {
        let c = config(true, &[]);
        assert_eq!(
            client_of(&c, ip("127.0.0.1"), &xff(&["192.0.2.1"])),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_of(&c, ip("192.0.2.7"), &xff(&["192.0.2.1"])),
            ip("192.0.2.7")
        );
    }
}
