//! The metrics of both daemons: a [`prometheus_client`] registry built at
//! each scrape ([`Exposition`]) from the daemon's counters, and the
//! histograms they keep ([`Histograms`], [`Histogram`]), encoded as
//! OpenMetrics text ([`CONTENT_TYPE`]).
//!
//! Names are the ones the READMEs document, exactly: a counter is given by
//! its sample name (`mihf_frames_sent_total`), and [`Exposition::counter`]
//! registers it under its family name (`mihf_frames_sent`), to which the
//! encoder appends `_total` again. The `# HELP`/`# TYPE` lines therefore
//! name the family (as OpenMetrics wants), the samples keep their names.

use std::fmt::Write as _;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Metric, Registry};

pub use prometheus_client;
pub use prometheus_client::metrics::histogram::Histogram;

/// The `Content-Type` of [`Exposition::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency and phase histograms of both
/// daemons (50 µs to 15 s).
pub const TIME_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 15.0,
];

/// A label set: names and values, in the order they are shown.
pub type Labels = Vec<(&'static str, String)>;

/// A label set from names and values; values are escaped as the text
/// format wants (`\\`, `\"`, `\n`).
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|&(k, v)| (k, escape(v))).collect()
}

fn escape(v: &str) -> String {
    if !v.contains(['\\', '"', '\n']) {
        return v.to_owned();
    }
    let mut o = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Labelled histograms over fixed buckets.
pub type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Labelled histograms over [`TIME_BUCKETS`].
pub fn time_histograms() -> Histograms {
    Family::new_with_constructor(|| Histogram::new(TIME_BUCKETS))
}

/// One scrape: metrics registered in the order they are shown.
#[derive(Debug, Default)]
pub struct Exposition {
    registry: Registry,
}

/// The family name of a counter documented as `name` (which ends in
/// `_total`: the encoder appends it).
fn counter_family(name: &str) -> &str {
    name.strip_suffix("_total")
        .unwrap_or_else(|| panic!("counter {name} does not end in _total"))
}

/// `help` without its full stop (the registry appends one).
fn help(h: &str) -> &str {
    h.strip_suffix('.').unwrap_or(h)
}

impl Exposition {
    /// Nothing registered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter without labels; `name` is the sample name (`…_total`).
    pub fn counter(&mut self, name: &str, h: &str, v: u64) {
        self.registry
            .register(counter_family(name), help(h), ConstCounter::new(v));
    }

    /// A labelled counter; `name` is the sample name (`…_total`).
    pub fn counters(
        &mut self,
        name: &str,
        h: &str,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        let f = Family::<Labels, Counter>::default();
        for (l, v) in samples {
            f.get_or_create(&l).inc_by(v);
        }
        self.registry.register(counter_family(name), help(h), f);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, h: &str, v: i64) {
        self.registry.register(name, help(h), ConstGauge::new(v));
    }

    /// A labelled gauge.
    pub fn gauges(
        &mut self,
        name: &str,
        h: &str,
        samples: impl IntoIterator<Item = (Labels, i64)>,
    ) {
        let f = Family::<Labels, Gauge>::default();
        for (l, v) in samples {
            f.get_or_create(&l).set(v);
        }
        self.registry.register(name, help(h), f);
    }

    /// A metric the daemon keeps (a [`Histogram`], [`Histograms`]), under
    /// `name` as it is.
    pub fn metric(&mut self, name: &str, h: &str, m: impl Metric) {
        self.registry.register(name, help(h), m);
    }

    /// The OpenMetrics text (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut o = String::with_capacity(16 * 1024);
        if encode(&mut o, &self.registry).is_err() {
            o.clear();
            let _ = writeln!(o, "# EOF");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_names_are_kept() {
        let mut x = Exposition::new();
        x.counter("d_frames_total", "Frames.", 3);
        x.counters(
            "d_messages_total",
            "Messages.",
            [(labels(&[("dir", "in"), ("msg", "a \"b\"\n")]), 2)],
        );
        x.gauge("d_users", "Users.", 4);
        let h = time_histograms();
        h.get_or_create(&labels(&[("role", "source")]))
            .observe(0.002);
        x.metric("d_phase_seconds", "Phases.", h);
        let t = x.encode();
        for line in [
            "# HELP d_frames Frames.",
            "# TYPE d_frames counter",
            "d_frames_total 3",
            "d_messages_total{dir=\"in\",msg=\"a \\\"b\\\"\\n\"} 2",
            "# TYPE d_users gauge",
            "d_users 4",
            "# TYPE d_phase_seconds histogram",
            "d_phase_seconds_bucket{le=\"0.00005\",role=\"source\"} 0",
            "d_phase_seconds_bucket{le=\"0.001\",role=\"source\"} 0",
            "d_phase_seconds_bucket{le=\"0.0025\",role=\"source\"} 1",
            "d_phase_seconds_bucket{le=\"15.0\",role=\"source\"} 1",
            "d_phase_seconds_bucket{le=\"+Inf\",role=\"source\"} 1",
            "d_phase_seconds_count{role=\"source\"} 1",
            "# EOF",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} missing in\n{t}");
        }
        let p = prometheus_parse::Scrape::parse(t.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let names: Vec<_> = p.samples.iter().map(|s| s.metric.as_str()).collect();
        assert!(names.contains(&"d_frames_total"), "{names:?}");
        assert!(names.contains(&"d_messages_total"), "{names:?}");
        assert!(names.contains(&"d_phase_seconds"), "{names:?}");
    }
}
