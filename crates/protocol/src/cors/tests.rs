use super::*;

/// The configuration of Raccoon's integration test (spec section 5.2), with the headers
/// `raccoon_config` adds: `Content-Type`, the id header and the group header.
fn spec_config() -> CorsConfig {
    CorsConfig {
        allowed_origins: vec!["http://localhost:3000".into(), "http://localhost:8080".into()],
        allowed_methods: vec!["GET".into(), "HEAD".into(), "POST".into(), "OPTIONS".into()],
        allowed_headers: vec!["Content-Type".into(), "X-User-ID".into(), "X-User-Group".into()],
        allow_credentials: false,
        max_age_secs: 60,
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn preflight_request(origin: &'static str, method: &'static str, requested: &'static str) -> HeaderMap {
    headers(&[
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", requested),
    ])
}

fn get<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).map(|v| v.to_str().unwrap())
}

/// Every CORS response header gorilla may set.
const CORS_HEADERS: [&str; 6] = [
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-allow-credentials",
    "access-control-max-age",
    "vary",
];

fn assert_no_cors_headers(map: &HeaderMap) {
    for name in CORS_HEADERS {
        assert!(!map.contains_key(name), "unexpected {name}: {map:?}");
    }
}

fn decorated(policy: &CorsPolicy, request: &HeaderMap) -> HeaderMap {
    let mut response = headers(&[("content-type", "application/json")]);
    policy.decorate(request, &mut response);
    response
}

#[test]
fn spec_case_14_allowed_origin_gets_acao() {
    let policy = CorsPolicy::new(&spec_config());
    let request = headers(&[("origin", "http://localhost:3000"), ("content-type", "application/json")]);
    assert_eq!(policy.preflight(&Method::POST, &request), None, "a POST is routed");
    let response = decorated(&policy, &request);
    assert_eq!(get(&response, "access-control-allow-origin"), Some("http://localhost:3000"));
    assert_eq!(get(&response, "vary"), Some("Origin"), "two origins allowed: the answer varies");
    assert_eq!(get(&response, "content-type"), Some("application/json"), "the route's headers stay");
    assert!(!response.contains_key("access-control-allow-credentials"));
}

#[test]
fn spec_case_15_disallowed_origin_is_served_without_cors_headers() {
    let policy = CorsPolicy::new(&spec_config());
    let request = headers(&[("origin", "http://localhost:5050")]);
    assert_eq!(policy.preflight(&Method::POST, &request), None, "still routed");
    let response = decorated(&policy, &request);
    assert_no_cors_headers(&response);
    assert_eq!(response.len(), 1);
}

#[test]
fn spec_case_16_preflight_with_allowed_headers() {
    let policy = CorsPolicy::new(&spec_config());
    let request = preflight_request("http://localhost:3000", "POST", "content-type,x-user-id");
    let answer = policy.preflight(&Method::OPTIONS, &request).expect("a preflight");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(get(&answer.headers, "access-control-allow-origin"), Some("http://localhost:3000"));
    assert_eq!(get(&answer.headers, "access-control-allow-headers"), Some("Content-Type,X-User-Id"));
    assert_eq!(get(&answer.headers, "access-control-max-age"), Some("60"));
    assert_eq!(get(&answer.headers, "vary"), Some("Origin"));
    assert!(!answer.headers.contains_key("access-control-allow-methods"), "POST needs no listing");
}

#[test]
fn spec_case_17_preflight_with_a_forbidden_header_is_403_without_acao() {
    let policy = CorsPolicy::new(&spec_config());
    let request = preflight_request("http://localhost:3000", "POST", "content-type,x-user-id,fake-header");
    let answer = policy.preflight(&Method::OPTIONS, &request).expect("a preflight");
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_no_cors_headers(&answer.headers);
}

#[test]
fn no_origin_leaves_everything_alone() {
    let policy = CorsPolicy::new(&spec_config());
    let request = headers(&[("content-type", "application/json")]);
    assert_eq!(policy.preflight(&Method::POST, &request), None);
    let response = decorated(&policy, &request);
    assert_no_cors_headers(&response);
    // An OPTIONS asking for a method but without Origin is no CORS request: routed (gorilla: 200).
    let request = headers(&[("access-control-request-method", "POST")]);
    assert_eq!(policy.preflight(&Method::OPTIONS, &request), None);
    // An empty Origin is treated as none.
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "")])));
}

#[test]
fn options_without_request_method_is_routed() {
    let policy = CorsPolicy::new(&spec_config());
    let request = headers(&[("origin", "http://localhost:3000")]);
    assert_eq!(policy.preflight(&Method::OPTIONS, &request), None, "gorilla answered 400 here");
    let response = decorated(&policy, &request);
    assert_eq!(get(&response, "access-control-allow-origin"), Some("http://localhost:3000"));
}

#[test]
fn preflight_from_a_disallowed_origin_is_an_empty_200() {
    let policy = CorsPolicy::new(&spec_config());
    let request = preflight_request("http://localhost:5050", "POST", "content-type");
    let answer = policy.preflight(&Method::OPTIONS, &request).expect("answered, not routed");
    assert_eq!(answer, Preflight { status: StatusCode::OK, headers: HeaderMap::new() });
}

#[test]
fn preflight_for_a_method_not_allowed_is_405_without_cors_headers() {
    let policy = CorsPolicy::new(&spec_config());
    for method in ["PUT", "DELETE", "post", ""] {
        let request = preflight_request("http://localhost:3000", method, "content-type");
        let answer = policy.preflight(&Method::OPTIONS, &request).expect("a preflight");
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "method {method:?}");
        assert_no_cors_headers(&answer.headers);
    }
}

#[test]
fn allow_methods_names_a_non_safelisted_method() {
    let mut config = spec_config();
    config.allowed_methods = vec![" put ".into(), "post".into()];
    let policy = CorsPolicy::new(&config);
    let answer = policy.preflight(&Method::OPTIONS, &preflight_request("http://localhost:3000", "PUT", "")).unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(get(&answer.headers, "access-control-allow-methods"), Some("PUT"));
    assert!(!answer.headers.contains_key("access-control-allow-headers"), "none requested");
    // Configured methods are upper-cased, as gorilla does.
    let answer = policy.preflight(&Method::OPTIONS, &preflight_request("http://localhost:3000", "POST", "")).unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.headers.contains_key("access-control-allow-methods"));
}

#[test]
fn wildcard_origin_answers_star() {
    let mut config = spec_config();
    config.allowed_origins = vec!["http://localhost:3000".into(), "*".into()];
    let policy = CorsPolicy::new(&config);
    for origin in ["http://localhost:3000", "https://elsewhere.example", "null"] {
        let request = headers(&[("origin", origin)]);
        let response = decorated(&policy, &request);
        assert_eq!(get(&response, "access-control-allow-origin"), Some("*"), "origin {origin}");
        assert!(!response.contains_key("vary"), "the answer does not depend on the origin");
    }
    let answer = policy.preflight(&Method::OPTIONS, &preflight_request("https://x.example", "GET", "")).unwrap();
    assert_eq!(get(&answer.headers, "access-control-allow-origin"), Some("*"));
}

#[test]
fn no_configured_origin_allows_any_with_star() {
    let mut config = spec_config();
    config.allowed_origins = Vec::new();
    let policy = CorsPolicy::new(&config);
    let response = decorated(&policy, &headers(&[("origin", "https://any.example")]));
    assert_eq!(get(&response, "access-control-allow-origin"), Some("*"));
    assert_no_cors_headers(&decorated(&policy, &HeaderMap::new()));
}

#[test]
fn a_single_origin_sets_no_vary() {
    let mut config = spec_config();
    config.allowed_origins = vec!["https://app.example".into()];
    let policy = CorsPolicy::new(&config);
    let response = decorated(&policy, &headers(&[("origin", "https://app.example")]));
    assert_eq!(get(&response, "access-control-allow-origin"), Some("https://app.example"));
    assert!(!response.contains_key("vary"));
}

#[test]
fn origins_match_regardless_of_ascii_case_and_the_request_origin_is_echoed() {
    let mut config = spec_config();
    config.allowed_origins = vec!["http://LocalHost:3000".into()];
    let policy = CorsPolicy::new(&config);
    let response = decorated(&policy, &headers(&[("origin", "http://localhost:3000")]));
    assert_eq!(get(&response, "access-control-allow-origin"), Some("http://localhost:3000"));
    // Not a prefix or suffix match.
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "http://localhost:30000")])));
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "http://localhost")])));
}

#[test]
fn credentials_are_announced_on_preflights_and_responses() {
    let mut config = spec_config();
    config.allow_credentials = true;
    let policy = CorsPolicy::new(&config);
    let request = headers(&[("origin", "http://localhost:8080")]);
    let response = decorated(&policy, &request);
    assert_eq!(get(&response, "access-control-allow-credentials"), Some("true"));
    let answer = policy.preflight(&Method::OPTIONS, &preflight_request("http://localhost:8080", "GET", "")).unwrap();
    assert_eq!(get(&answer.headers, "access-control-allow-credentials"), Some("true"));
    // Not for origins that are not allowed, nor on refusals.
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "http://localhost:1")])));
    let refused = policy.preflight(&Method::OPTIONS, &preflight_request("http://localhost:8080", "GET", "nope"));
    assert_no_cors_headers(&refused.unwrap().headers);
}

#[test]
fn header_names_match_case_insensitively_and_are_echoed_canonically() {
    let policy = CorsPolicy::new(&spec_config());
    let request = preflight_request("http://localhost:3000", "POST", " X-USER-id , CONTENT-type,,x-user-group ");
    let answer = policy.preflight(&Method::OPTIONS, &request).unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(get(&answer.headers, "access-control-allow-headers"), Some("X-User-Id,Content-Type,X-User-Group"));
}

#[test]
fn always_allowed_headers_need_no_configuration_and_are_echoed() {
    let mut config = spec_config();
    config.allowed_headers = Vec::new();
    let policy = CorsPolicy::new(&config);
    let request = preflight_request("http://localhost:3000", "POST", "accept,accept-language,content-language,origin");
    let answer = policy.preflight(&Method::OPTIONS, &request).unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        get(&answer.headers, "access-control-allow-headers"),
        Some("Accept,Accept-Language,Content-Language,Origin")
    );
    // Content-Type is not among them: raccoon_config adds it to the configured list.
    let request = preflight_request("http://localhost:3000", "POST", "content-type");
    assert_eq!(policy.preflight(&Method::OPTIONS, &request).unwrap().status, StatusCode::FORBIDDEN);
}

#[test]
fn every_request_headers_line_is_checked() {
    let policy = CorsPolicy::new(&spec_config());
    let mut request = preflight_request("http://localhost:3000", "POST", "content-type");
    request.append("access-control-request-headers", HeaderValue::from_static("x-user-id"));
    let answer = policy.preflight(&Method::OPTIONS, &request).unwrap();
    assert_eq!(get(&answer.headers, "access-control-allow-headers"), Some("Content-Type,X-User-Id"));
    request.append("access-control-request-headers", HeaderValue::from_static("fake-header"));
    assert_eq!(policy.preflight(&Method::OPTIONS, &request).unwrap().status, StatusCode::FORBIDDEN);
}

#[test]
fn non_ascii_request_headers_are_refused_without_panicking() {
    let policy = CorsPolicy::new(&spec_config());
    let mut request = preflight_request("http://localhost:3000", "POST", "content-type");
    request.insert("access-control-request-headers", HeaderValue::from_bytes(b"x-\xffid").unwrap());
    assert_eq!(policy.preflight(&Method::OPTIONS, &request).unwrap().status, StatusCode::FORBIDDEN);
    let mut request = preflight_request("http://localhost:3000", "POST", "");
    request.insert("access-control-request-method", HeaderValue::from_bytes(b"P\xffST").unwrap());
    assert_eq!(policy.preflight(&Method::OPTIONS, &request).unwrap().status, StatusCode::METHOD_NOT_ALLOWED);
    let mut request = HeaderMap::new();
    request.insert("origin", HeaderValue::from_bytes(b"http://\xfflocalhost").unwrap());
    assert_no_cors_headers(&decorated(&policy, &request));
}

#[test]
fn max_age_is_omitted_at_zero_and_capped_at_600() {
    let request = preflight_request("http://localhost:3000", "GET", "");
    let mut config = spec_config();
    config.max_age_secs = 0;
    let answer = CorsPolicy::new(&config).preflight(&Method::OPTIONS, &request).unwrap();
    assert!(!answer.headers.contains_key("access-control-max-age"));
    config.max_age_secs = 86_400;
    let answer = CorsPolicy::new(&config).preflight(&Method::OPTIONS, &request).unwrap();
    assert_eq!(get(&answer.headers, "access-control-max-age"), Some("600"));
}

#[test]
fn max_age_is_only_on_preflights() {
    let policy = CorsPolicy::new(&spec_config());
    let response = decorated(&policy, &headers(&[("origin", "http://localhost:3000")]));
    assert!(!response.contains_key("access-control-max-age"));
    assert!(!response.contains_key("access-control-allow-headers"));
}

#[test]
fn vary_is_appended_once() {
    let policy = CorsPolicy::new(&spec_config());
    let request = headers(&[("origin", "http://localhost:3000")]);
    let mut response = headers(&[("vary", "Accept-Encoding")]);
    policy.decorate(&request, &mut response);
    let vary: Vec<_> = response.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
    policy.decorate(&request, &mut response);
    assert_eq!(response.get_all("vary").iter().count(), 2, "not repeated");
}

#[test]
fn other_methods_are_never_preflights() {
    let policy = CorsPolicy::new(&spec_config());
    let request = preflight_request("http://localhost:3000", "POST", "fake-header");
    for method in [Method::GET, Method::POST, Method::HEAD, Method::PUT] {
        assert_eq!(policy.preflight(&method, &request), None, "{method}");
    }
    // An actual request is decorated whatever its method (gorilla checks methods only on preflights).
    let response = decorated(&policy, &request);
    assert_eq!(get(&response, "access-control-allow-origin"), Some("http://localhost:3000"));
}

#[test]
fn canonical_names() {
    assert_eq!(canonical_header_name("x-user-id"), "X-User-Id");
    assert_eq!(canonical_header_name("CONTENT-TYPE"), "Content-Type");
    assert_eq!(canonical_header_name("a--b"), "A--B");
    assert_eq!(canonical_header_name(""), "");
}

#[test]
fn wildcard_subdomains_are_echoed_with_vary() {
    let mut config = spec_config();
    config.allowed_origins = vec!["https://*.example.com".into()];
    let policy = CorsPolicy::new(&config);
    let response = decorated(&policy, &headers(&[("origin", "https://shop.example.com")]));
    assert_eq!(get(&response, "access-control-allow-origin"), Some("https://shop.example.com"));
    assert_eq!(get(&response, "vary"), Some("Origin"), "the answer depends on the origin");
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "https://example.com")])));
    assert_no_cors_headers(&decorated(&policy, &headers(&[("origin", "http://shop.example.com")])));
}

#[test]
fn an_error_detail_is_exposed_to_allowed_origins_only() {
    let policy = CorsPolicy::new(&spec_config());
    let mut response = HeaderMap::new();
    response.insert(ERROR_DETAIL_HEADER, HeaderValue::from_static("missing field"));
    policy.decorate(&headers(&[("origin", "http://localhost:3000")]), &mut response);
    assert_eq!(get(&response, "access-control-expose-headers"), Some("X-Raccoon-Error-Detail"));
    let mut foreign = HeaderMap::new();
    foreign.insert(ERROR_DETAIL_HEADER, HeaderValue::from_static("missing field"));
    policy.decorate(&headers(&[("origin", "http://elsewhere.test")]), &mut foreign);
    assert!(!foreign.contains_key("access-control-expose-headers"));
    let plain = decorated(&policy, &headers(&[("origin", "http://localhost:3000")]));
    assert!(!plain.contains_key("access-control-expose-headers"), "nothing to expose");
}
