//! Web origins (`scheme://host[:port]`, as a browser's `Origin` header carries them) and lists
//! of allowed ones, shared by CORS ([`super::cors`]) and the WebSocket upgrade's origin check
//! ([`super::routing::UpgradeOrigins`]).
//!
//! An entry of a list is `*` (every origin), an origin such as `https://app.example.com` or
//! `http://localhost:3000`, or a wildcard such as `https://*.example.com`, which takes every
//! subdomain of `example.com` at any depth (`https://a.example.com`, `https://a.b.example.com`)
//! but not `example.com` itself (list it too). Schemes and hosts compare ignoring ASCII case, and
//! a scheme's default port is the same as no port (`https://a.com:443` is `https://a.com`, which
//! is how browsers send it). The whole origin is compared: scheme, host and port.
//!
//! No runtime, no IO.

use thiserror::Error;

/// An origin, normalised: scheme and host in lower case, the scheme's default port dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    /// A DNS name, an IPv4 address, or an IPv6 address in brackets.
    host: String,
    port: Option<u16>,
}

/// One entry of a list, other than `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    /// The exact host, or the suffix (`.example.com`) a subdomain must end with.
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Subdomains(String),
}

/// An entry that is not `*`, an origin or a wildcard origin.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not * or an origin such as https://app.example.com, http://localhost:3000 or https://*.example.com")]
pub struct InvalidOrigin(pub String);

/// The origins a list allows.
///
/// Lives on: built once from the configuration; every shard owns a clone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginList {
    any: bool,
    patterns: Vec<Pattern>,
}

impl OriginList {
    /// The list that allows every origin.
    pub fn any() -> Self {
        OriginList { any: true, patterns: Vec::new() }
    }

    /// Parses the entries of a list (trimmed; empty entries are skipped). An empty list allows
    /// nothing: what it means is the caller's to say.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidOrigin> {
        let mut list = OriginList::default();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                list.any = true;
                continue;
            }
            let invalid = || InvalidOrigin(entry.to_owned());
            let (wildcard, text) = match entry.split_once("://*.") {
                Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
                None => (false, entry.to_owned()),
            };
            let origin = parse_origin(&text).ok_or_else(invalid)?;
            let host = if wildcard {
                // A wildcard stands for DNS labels: not in front of an IP address.
                if origin.host.starts_with('[') || origin.host.parse::<std::net::Ipv4Addr>().is_ok() {
                    return Err(invalid());
                }
                HostPattern::Subdomains(format!(".{}", origin.host))
            } else {
                HostPattern::Exact(origin.host)
            };
            let pattern = Pattern { scheme: origin.scheme, host, port: origin.port };
            if !list.patterns.contains(&pattern) {
                list.patterns.push(pattern);
            }
        }
        Ok(list)
    }

    /// Whether the list allows every origin (it holds `*`).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether the list allows nothing (no entry at all).
    pub fn is_empty(&self) -> bool {
        !self.any && self.patterns.is_empty()
    }

    /// Whether which origin is allowed depends on the origin: more than one entry, or a
    /// wildcard (an answer that echoes the origin then needs `Vary: Origin`).
    pub fn varies(&self) -> bool {
        !self.any
            && (self.patterns.len() > 1 || self.patterns.iter().any(|p| matches!(p.host, HostPattern::Subdomains(_))))
    }

    /// Whether `origin` (an `Origin` header's value) is allowed. With `*`, any non-empty value
    /// is; otherwise it must be a well-formed origin matching an entry.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim();
        if self.any {
            return !origin.is_empty();
        }
        let Some(origin) = parse_origin(origin) else {
            return false;
        };
        self.patterns.iter().any(|p| {
            p.scheme == origin.scheme
                && p.port == origin.port
                && match &p.host {
                    HostPattern::Exact(host) => *host == origin.host,
                    HostPattern::Subdomains(suffix) => {
                        origin.host.len() > suffix.len() && origin.host.ends_with(suffix.as_str())
                    }
                }
        })
    }
}

/// The port a scheme means when none is given.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Parses `scheme://host[:port]` with nothing after it; the host is a DNS name, an IPv4 address
/// or a bracketed IPv6 address.
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return None;
    }
    // `after` is what follows the host: nothing, or `:` and the port number.
    let (host, after) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (addr, after) = rest.split_once(']')?;
            addr.parse::<std::net::Ipv6Addr>().ok()?;
            (&authority[..addr.len() + 2], after)
        }
        None => {
            let (host, after) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let label_ok = |l: &str| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !host.split('.').all(label_ok) {
                return None;
            }
            (host, after)
        }
    };
    let scheme = scheme.to_ascii_lowercase();
    let port = match after {
        "" => None,
        _ => {
            let digits = after.strip_prefix(':')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let port: u16 = digits.parse().ok()?;
            (default_port(&scheme) != Some(port)).then_some(port)
        }
    };
    Some(Origin { scheme, host: host.to_ascii_lowercase(), port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> OriginList {
        OriginList::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn exact_entries_compare_the_whole_origin() {
        let l = list(&["http://localhost:3000", "https://App.Example.com"]);
        assert!(l.allows("http://localhost:3000"));
        assert!(l.allows("HTTP://LOCALHOST:3000"), "scheme and host ignore case");
        assert!(l.allows("https://app.example.com"));
        assert!(l.allows("https://app.example.com:443"), "the default port is no port");
        assert!(!l.allows("http://localhost:3001"), "another port");
        assert!(!l.allows("https://localhost:3000"), "another scheme");
        assert!(!l.allows("http://localhost"), "no port is port 80, not 3000");
        assert!(!l.allows("http://app.example.com"), "http is not https");
        assert!(!l.allows("https://evil.app.example.com"), "an exact entry takes no subdomain");
        assert!(!l.allows("null"));
        assert!(!l.allows(""));
        assert!(!l.allows("https://app.example.com/path"), "an origin has no path");
        assert!(l.varies());
        assert!(!list(&["http://a.test"]).varies());
    }

    #[test]
    fn wildcards_take_subdomains_at_any_depth_but_not_the_domain() {
        let l = list(&["https://*.example.com"]);
        assert!(l.allows("https://a.example.com"));
        assert!(l.allows("https://a.b.example.com"));
        assert!(!l.allows("https://example.com"));
        assert!(!l.allows("https://badexample.com"), "a suffix match is on a label boundary");
        assert!(!l.allows("https://a.example.com.evil.test"));
        assert!(!l.allows("http://a.example.com"), "the scheme still counts");
        assert!(!l.allows("https://a.example.com:8443"), "and the port");
        assert!(list(&["https://*.example.com:8443"]).allows("https://a.example.com:8443"));
        assert!(l.varies(), "a wildcard's answer depends on the origin");
    }

    #[test]
    fn star_allows_every_origin() {
        let l = list(&["http://a.test", "*"]);
        assert!(l.allows_any());
        assert!(l.allows("https://anything.test:1234"));
        assert!(l.allows("null"), "even an opaque origin");
        assert!(!l.allows(""));
        assert!(!l.varies());
        assert!(OriginList::any().allows("http://x.test"));
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let l = list(&[]);
        assert!(l.is_empty());
        assert!(!l.allows("http://localhost:3000"));
        assert!(list(&[" ", ""]).is_empty());
    }

    #[test]
    fn ipv6_and_ipv4_hosts() {
        let l = list(&["http://[::1]:3000", "http://127.0.0.1:3000"]);
        assert!(l.allows("http://[::1]:3000"));
        assert!(l.allows("http://127.0.0.1:3000"));
        assert!(!l.allows("http://[::2]:3000"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "localhost:3000",
            "http://",
            "http://a b",
            "http://a.test/",
            "http://a.test:x",
            "http://a.test:70000",
            "http://*.[::1]",
            "http://*.127.0.0.1",
            "http://a.*.test",
            "*.example.com",
            "1http://a.test",
        ] {
            assert_eq!(OriginList::parse([bad]), Err(InvalidOrigin(bad.to_owned())), "{bad}");
        }
    }
}
