//! The operator's metrics: request latency histograms as each instance
//! records them, the fields a store sums them under, and the
//! Prometheus / OpenMetrics text of `GET /metrics`.
//!
//! Instances (Spin's are short-lived and many) record requests in a
//! [`Recorder`] and add it to the store now and then ([`Recorder::drain`]
//! gives `(field, increment)` pairs); `GET /metrics` reads the summed fields
//! back ([`parse_fields`]) and renders them with the store's counters
//! ([`render`]). Everything here is pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Upper bounds (milliseconds) of the latency buckets; `+Inf` follows.
pub const BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// One series of the request histogram: route template, method, status class.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    /// The route template (`/api/v1/verify/session/:sid`), never a raw path.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// `2xx`, `4xx`, …
    pub class: String,
}

impl Series {
    /// The series of a request.
    pub fn of(route: &str, method: &str, status: u16) -> Series {
        Series {
            route: route.to_owned(),
            method: method.to_owned(),
            class: format!("{}xx", status / 100),
        }
    }
}

/// One series' counts: observations per bucket (not cumulative), and sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations at or below `BUCKETS_MS[i]` and above the one before; the
    /// last entry counts those above every bound.
    pub buckets: [u64; BUCKETS_MS.len() + 1],
    /// Observations.
    pub count: u64,
    /// Sum of the observations, in milliseconds.
    pub sum_ms: u64,
}

impl Histogram {
    /// Counts one observation of `ms`.
    pub fn observe(&mut self, ms: u64) {
        let i = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }
}

/// The separator of a field's parts (never in a route template or method).
const SEP: char = '|';

/// What one instance observed since its last drain.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorder {
    series: BTreeMap<Series, Histogram>,
}

impl Recorder {
    /// Records one request.
    pub fn record(&mut self, series: Series, ms: u64) {
        self.series.entry(series).or_default().observe(ms);
    }

    /// Whether nothing was recorded since the last drain.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Empties the recorder into `(field, increment)` pairs for a store to
    /// add (Redis `HINCRBY`, SQLite upserts): `route|method|class|count`,
    /// `…|sum_ms`, `…|b<i>` (bucket `i`, non-cumulative; zeros left out).
    pub fn drain(&mut self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (s, h) in std::mem::take(&mut self.series) {
            let prefix = format!("{}{SEP}{}{SEP}{}{SEP}", s.route, s.method, s.class);
            out.push((format!("{prefix}count"), h.count));
            out.push((format!("{prefix}sum_ms"), h.sum_ms));
            for (i, n) in h.buckets.iter().enumerate() {
                if *n > 0 {
                    out.push((format!("{prefix}b{i}"), *n));
                }
            }
        }
        out
    }
}

/// Rebuilds the histograms from the summed fields a store holds; fields it
/// does not know are ignored.
pub fn parse_fields<'a>(
    fields: impl IntoIterator<Item = (&'a str, u64)>,
) -> BTreeMap<Series, Histogram> {
    let mut out: BTreeMap<Series, Histogram> = BTreeMap::new();
    for (field, n) in fields {
        let parts: Vec<&str> = field.split(SEP).collect();
        let [route, method, class, what] = parts.as_slice() else {
            continue;
        };
        let h = out
            .entry(Series {
                route: (*route).to_owned(),
                method: (*method).to_owned(),
                class: (*class).to_owned(),
            })
            .or_default();
        match *what {
            "count" => h.count = n,
            "sum_ms" => h.sum_ms = n,
            b => {
                if let Some(i) = b.strip_prefix('b').and_then(|i| i.parse::<usize>().ok())
                    && let Some(slot) = h.buckets.get_mut(i)
                {
                    *slot = n;
                }
            }
        }
    }
    out
}

/// A counter or gauge of the service, with its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Metric name (without `_total`; counters get it).
    pub name: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// Its `# HELP` text.
    pub help: &'static str,
    /// Label pairs.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: u64,
}

/// Escapes a label value (backslash, quote, newline).
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The Prometheus text exposition (version 0.0.4) of the samples and the
/// request histograms.
pub fn render(samples: &[Sample], histograms: &BTreeMap<Series, Histogram>) -> String {
    let mut out = String::new();
    let mut declared: Vec<&str> = Vec::new();
    for s in samples {
        let name = if s.kind == "counter" {
            format!("{}_total", s.name)
        } else {
            s.name.to_owned()
        };
        if !declared.contains(&s.name) {
            declared.push(s.name);
            let _ = writeln!(out, "# HELP {name} {}", s.help);
            let _ = writeln!(out, "# TYPE {name} {}", s.kind);
        }
        let pairs: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = writeln!(out, "{name}{} {}", labels(&pairs), s.value);
    }
    let h = "dock_http_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {h} Time from a request's arrival in the component to its answer, by route template, method and status class."
    );
    let _ = writeln!(out, "# TYPE {h} histogram");
    for (s, hist) in histograms {
        let base = [
            ("route", s.route.as_str()),
            ("method", s.method.as_str()),
            ("code", s.class.as_str()),
        ];
        let mut cumulative = 0;
        for (i, n) in hist.buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS_MS.get(i).map_or_else(
                || "+Inf".to_owned(),
                |ms| format!("{}", *ms as f64 / 1000.0),
            );
            let mut pairs = base.to_vec();
            pairs.push(("le", le.as_str()));
            let _ = writeln!(out, "{h}_bucket{} {cumulative}", labels(&pairs));
        }
        let _ = writeln!(
            out,
            "{h}_sum{} {}",
            labels(&base),
            hist.sum_ms as f64 / 1000.0
        );
        let _ = writeln!(out, "{h}_count{} {}", labels(&base), hist.count);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket() {
        let mut h = Histogram::default();
        for ms in [0, 5, 6, 10_000, 10_001] {
            h.observe(ms);
        }
        assert_eq!(h.buckets[0], 2);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BUCKETS_MS.len() - 1], 1);
        assert_eq!(h.buckets[BUCKETS_MS.len()], 1);
        assert_eq!((h.count, h.sum_ms), (5, 20_012));
    }

    #[test]
    fn drained_fields_summed_by_a_store_rebuild_the_histograms() {
        let mut a = Recorder::default();
        let mut b = Recorder::default();
        let s = Series::of("/api/v1/verify/session", "POST", 200);
        a.record(s.clone(), 3);
        a.record(s.clone(), 40);
        b.record(s.clone(), 40);
        b.record(Series::of("/healthz", "GET", 503), 1);
        // What a store does: sum the increments per field.
        let mut store: BTreeMap<String, u64> = BTreeMap::new();
        for (f, n) in a.drain().into_iter().chain(b.drain()) {
            *store.entry(f).or_default() += n;
        }
        assert!(a.is_empty() && b.is_empty());
        let hs = parse_fields(store.iter().map(|(f, n)| (f.as_str(), *n)));
        let h = &hs[&s];
        assert_eq!((h.count, h.sum_ms), (3, 83));
        assert_eq!((h.buckets[0], h.buckets[3]), (1, 2));
        assert_eq!(hs[&Series::of("/healthz", "GET", 503)].count, 1);
    }

    #[test]
    fn render_writes_cumulative_buckets_and_escaped_labels() {
        let mut r = Recorder::default();
        r.record(Series::of("/a", "GET", 200), 7);
        let hs = parse_fields(
            r.drain()
                .iter()
                .map(|(f, n)| (f.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        let text = render(
            &[Sample {
                name: "dock_sessions_created",
                kind: "counter",
                help: "Sessions created.",
                labels: vec![("pid", "a\"b".into())],
                value: 4,
            }],
            &hs,
        );
        assert!(text.contains("# TYPE dock_sessions_created_total counter\n"));
        assert!(text.contains("dock_sessions_created_total{pid=\"a\\\"b\"} 4\n"));
        assert!(text.contains(
            "dock_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",code=\"2xx\",le=\"0.005\"} 0\n"
        ));
        assert!(text.contains(
            "dock_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",code=\"2xx\",le=\"0.01\"} 1\n"
        ));
        assert!(text.contains(
            "dock_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",code=\"2xx\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("dock_http_request_duration_seconds_sum{route=\"/a\",method=\"GET\",code=\"2xx\"} 0.007\n"));
    }
}
