//! Who a request or a WebSocket connection belongs to: Raccoon's identifier, an id and a group.
//!
//! Raccoon reads both from request headers (`SERVER_WEBSOCKET_CONN_ID_HEADER`,
//! `SERVER_WEBSOCKET_CONN_GROUP_HEADER`, else `SERVER_WEBSOCKET_CONN_GROUP_DEFAULT`), and so do
//! REST and gRPC here. A web page cannot set headers on `new WebSocket(...)`, so an upgrade may
//! also name them where a page can, each source opt-in:
//!
//! * the `Sec-WebSocket-Protocol` list (`SERVER_WEBSOCKET_CONN_SUBPROTOCOL_ENABLED`): the page
//!   offers [`SUBPROTOCOL`] and `raccoon.id.<id>` (and `raccoon.group.<group>`), the values
//!   percent-encoded where a character is not allowed in a protocol name. The 101 names
//!   [`SUBPROTOCOL`], never a value the client chose (Chrome fails a handshake whose offered
//!   protocols are not answered with one of them);
//! * query parameters of the upgrade's URL, named by `SERVER_WEBSOCKET_CONN_ID_QUERY_PARAM` and
//!   `SERVER_WEBSOCKET_CONN_GROUP_QUERY_PARAM` (URL-decoded). URLs end up in access logs: the
//!   subprotocol keeps the id out of them.
//!
//! The first source that names a non-empty value wins, in that order: header, subprotocol,
//! query parameter. An upgrade that names no id has the empty id, as in Raccoon (so one such
//! connection per group), unless `SERVER_WEBSOCKET_CONN_ID_ANONYMOUS` gives each its own.
//!
//! No runtime, no IO: a function of the request's headers and query.

use http::header::{HeaderMap, SEC_WEBSOCKET_PROTOCOL};

use super::routing::header_str;

/// The protocol name a page offers to name its connection in the protocol list, and the one the
/// 101 answers with.
pub const SUBPROTOCOL: &str = "raccoon";
/// Prefix of the offered protocol that carries the id.
pub const ID_PROTOCOL_PREFIX: &str = "raccoon.id.";
/// Prefix of the offered protocol that carries the group.
pub const GROUP_PROTOCOL_PREFIX: &str = "raccoon.group.";

/// Where ids and groups come from (`SERVER_WEBSOCKET_CONN_*`).
///
/// Lives on: built once from the configuration; every shard owns a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRules {
    /// Header carrying the id.
    pub id_header: String,
    /// Header carrying the group, if configured.
    pub group_header: Option<String>,
    /// Group when no source names one.
    pub group_default: String,
    /// Upgrades: query parameter carrying the id, if configured.
    pub id_query_param: Option<String>,
    /// Upgrades: query parameter carrying the group, if configured.
    pub group_query_param: Option<String>,
    /// Upgrades: read the id and group from the offered subprotocols.
    pub subprotocol: bool,
    /// Upgrades that name no id get an identity of their own instead of the empty id.
    pub anonymous: bool,
}

/// What a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The id; `None` when no source names one. (REST and gRPC: the id header's value, even
    /// empty; `None` when the header is missing, which gRPC refuses, as Raccoon.)
    pub id: Option<String>,
    /// The group, or the default.
    pub group: String,
    /// The protocol the 101 of an upgrade names ([`SUBPROTOCOL`], when it was offered and the
    /// subprotocol source is on).
    pub protocol: Option<&'static str>,
}

impl IdentityRules {
    /// A REST request or gRPC call: the headers only (gRPC metadata are headers), as Raccoon.
    pub fn from_headers(&self, headers: &HeaderMap) -> Named {
        let id = header_str(headers, &self.id_header).map(str::to_owned);
        let group = self.group_header(headers).unwrap_or(&self.group_default).to_owned();
        Named { id, group, protocol: None }
    }

    /// A WebSocket upgrade: the headers, then the subprotocol list, then the query (the part of
    /// the target after `?`), each where enabled.
    pub fn for_upgrade(&self, headers: &HeaderMap, query: Option<&str>) -> Named {
        let offered = if self.subprotocol { Offered::read(headers) } else { Offered::default() };
        let from_query = |name: &Option<String>| {
            let (name, query) = (name.as_deref()?, query?);
            form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
        };
        let non_empty = |v: &Option<String>| v.as_ref().is_some_and(|v| !v.is_empty());
        let id = [
            header_str(headers, &self.id_header).map(str::to_owned),
            offered.id.clone(),
            from_query(&self.id_query_param),
        ]
        .into_iter()
        .find(non_empty)
        .flatten();
        let group = match self.group_header(headers) {
            Some(group) => group.to_owned(),
            None => [offered.group, from_query(&self.group_query_param)]
                .into_iter()
                .find(non_empty)
                .flatten()
                .unwrap_or_else(|| self.group_default.clone()),
        };
        Named { id, group, protocol: offered.raccoon.then_some(SUBPROTOCOL) }
    }

    fn group_header<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.group_header.as_deref().and_then(|name| header_str(headers, name)).filter(|g| !g.is_empty())
    }
}

/// What the `Sec-WebSocket-Protocol` list of an upgrade offers.
#[derive(Debug, Default)]
struct Offered {
    /// [`SUBPROTOCOL`] is in it.
    raccoon: bool,
    id: Option<String>,
    group: Option<String>,
}

impl Offered {
    fn read(headers: &HeaderMap) -> Self {
        let mut offered = Offered::default();
        let protocols = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim);
        let decoded = |value: &str| percent_encoding::percent_decode_str(value).decode_utf8().ok().map(|v| v.into());
        for protocol in protocols {
            if protocol == SUBPROTOCOL {
                offered.raccoon = true;
            } else if let Some(id) = protocol.strip_prefix(ID_PROTOCOL_PREFIX) {
                offered.id = offered.id.or_else(|| decoded(id));
            } else if let Some(group) = protocol.strip_prefix(GROUP_PROTOCOL_PREFIX) {
                offered.group = offered.group.or_else(|| decoded(group));
            }
        }
        offered
    }
}

/// Who a connection or request belongs to, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The id; empty when none was named (as Raccoon), or the name given to an anonymous
    /// connection.
    pub user: String,
    /// The group.
    pub group: String,
    /// Named by no source and given a name of its own: not one of the identifiers a second
    /// connection could duplicate.
    pub anonymous: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn rules() -> IdentityRules {
        IdentityRules {
            id_header: "X-User-ID".into(),
            group_header: Some("X-User-Group".into()),
            group_default: "--default--".into(),
            id_query_param: Some("user".into()),
            group_query_param: Some("group".into()),
            subprotocol: true,
            anonymous: false,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn named(id: Option<&str>, group: &str, protocol: Option<&'static str>) -> Named {
        Named { id: id.map(str::to_owned), group: group.to_owned(), protocol }
    }

    #[test]
    fn rest_and_grpc_read_headers_only() {
        let r = rules();
        let h = headers(&[("x-user-id", "u1"), ("x-user-group", "g1"), ("sec-websocket-protocol", "raccoon")]);
        assert_eq!(r.from_headers(&h), named(Some("u1"), "g1", None));
        assert_eq!(r.from_headers(&headers(&[("x-user-id", "")])), named(Some(""), "--default--", None));
        assert_eq!(r.from_headers(&HeaderMap::new()), named(None, "--default--", None));
        assert_eq!(r.from_headers(&headers(&[("x-user-group", "")])).group, "--default--");
    }

    #[test]
    fn upgrades_take_the_header_then_the_subprotocol_then_the_query() {
        let r = rules();
        let all = headers(&[
            ("x-user-id", "header-id"),
            ("sec-websocket-protocol", "raccoon, raccoon.id.proto-id, raccoon.group.proto-group"),
        ]);
        let query = Some("user=query-id&group=query-group");
        assert_eq!(r.for_upgrade(&all, query), named(Some("header-id"), "proto-group", Some(SUBPROTOCOL)));
        let protocols = headers(&[("sec-websocket-protocol", "raccoon,raccoon.id.proto-id")]);
        assert_eq!(r.for_upgrade(&protocols, query), named(Some("proto-id"), "query-group", Some(SUBPROTOCOL)));
        assert_eq!(r.for_upgrade(&HeaderMap::new(), query), named(Some("query-id"), "query-group", None));
        // An empty value is no value: the next source is asked.
        let empty = headers(&[("x-user-id", ""), ("x-user-group", "")]);
        assert_eq!(r.for_upgrade(&empty, Some("user=&user=second&group=g")), named(None, "g", None));
        assert_eq!(r.for_upgrade(&empty, Some("user=q")), named(Some("q"), "--default--", None));
        assert_eq!(r.for_upgrade(&HeaderMap::new(), None), named(None, "--default--", None));
    }

    #[test]
    fn values_are_decoded() {
        let r = rules();
        let h = headers(&[("sec-websocket-protocol", "raccoon"), ("sec-websocket-protocol", "raccoon.id.a%40b%2Fc")]);
        assert_eq!(r.for_upgrade(&h, None).id.as_deref(), Some("a@b/c"), "protocol lists on two lines");
        let q = r.for_upgrade(&HeaderMap::new(), Some("x=1&user=J%C3%BCrgen+M&group=web%20shop"));
        assert_eq!(q, named(Some("Jürgen M"), "web shop", None));
        let bad = headers(&[("sec-websocket-protocol", "raccoon.id.%FF")]);
        assert_eq!(r.for_upgrade(&bad, None).id, None, "not UTF-8 once decoded: ignored");
    }

    #[test]
    fn sources_that_are_off_are_not_read() {
        let r = IdentityRules { id_query_param: None, group_query_param: None, subprotocol: false, ..rules() };
        let h = headers(&[("sec-websocket-protocol", "raccoon, raccoon.id.p")]);
        assert_eq!(r.for_upgrade(&h, Some("user=q&group=g")), named(None, "--default--", None));
        let only_header_group = IdentityRules { group_header: None, ..rules() };
        let grouped = headers(&[("x-user-group", "ignored")]);
        assert_eq!(only_header_group.for_upgrade(&grouped, Some("group=g")).group, "g");
    }

    #[test]
    fn the_answer_names_raccoon_only_when_offered() {
        let r = rules();
        let h = headers(&[("sec-websocket-protocol", "chat, raccoon.id.u")]);
        assert_eq!(r.for_upgrade(&h, None), named(Some("u"), "--default--", None));
        let h = headers(&[("sec-websocket-protocol", "chat, raccoon")]);
        assert_eq!(r.for_upgrade(&h, None).protocol, Some(SUBPROTOCOL));
    }
}
