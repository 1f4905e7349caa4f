//! Reading the server's Prometheus text exposition: one sample, the sum of a metric's samples,
//! and scraping until expected values hold.

use std::time::{Duration, Instant};

use crate::http::get_from;
use crate::server::TestServer;

/// The value of the sample `series` (name and labels exactly as exported), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sum of every sample of `name` (any labels) in a Prometheus text exposition.
pub fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes the server's `/metrics` until every `(series, value)` holds and returns that scrape;
/// panics with the last scrape after `limit`.
pub fn scrape_until(server: &TestServer, want: &[(String, f64)], limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let (status, text) = get_from(server.prometheus_addr(), "/metrics");
        assert_eq!(status, 200, "{text}");
        let missing: Vec<_> = want.iter().filter(|(s, v)| sample(&text, s) != Some(*v)).collect();
        if missing.is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "after {limit:?} these do not hold: {missing:?}\nlast scrape:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_sums() {
        let text = "# HELP x\nevents_total{topic=\"a\"} 3\nevents_total{topic=\"b\"} 4\nevents_total_other 9\nup 1\n";
        assert_eq!(sample(text, "events_total{topic=\"b\"}"), Some(4.0));
        assert_eq!(sample(text, "up"), Some(1.0));
        assert_eq!(sample(text, "down"), None);
        assert_eq!(sum_of(text, "events_total"), 7.0);
    }
}
