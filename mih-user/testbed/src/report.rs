//! Handover statistics (Table I) and histogram images for the demo and benchmarks.
//!
//! A run of N handovers yields, per handover, the time spent in each phase
//! (milliseconds) and the migration data length (octets: application context
//! plus the TCP session contexts). This module turns those samples into:
//!
//! * a [`Summary`] per series (n, mean, sample std, min, p50, p99, max),
//!   serialisable with serde so the demo can emit JSON;
//! * a fixed-width text table of phase times, [`PhaseTable`], laid out like
//!   Table I of the prototype we follow (rows named by the `PHASE_*`
//!   constants);
//! * a text view of a size distribution, [`render_size_distribution`]: one
//!   summary line in KB and a bucketed `#` histogram;
//! * SVG histograms, [`histogram_svg`] / [`histogram_svg_string`], used for
//!   "Fig. 11" (total migration time, ms) and "Fig. 12" (migration data
//!   length, KB).
//!
//! The images are drawn with `plotters` and its SVG backend only: no bitmap
//! backend and no font-kit, so nothing links against fontconfig or freetype.
//! Text in the SVG is left to the viewer's fonts.
//!
//! Nothing here panics on odd input: non-finite samples are skipped, an empty
//! series gives `None` (statistics) or [`ReportError::NoData`] (images), and a
//! series whose values are all equal still gets a visible bar.
//!
//! # Example
//!
//! ```
//! use testbed::report::{self, PhaseTable, Summary};
//!
//! let total_ms = [1.9, 2.1, 2.0, 2.4, 1.8];
//! let s = Summary::of(&total_ms).unwrap();
//! assert_eq!(s.n, 5);
//! assert!((s.mean - 2.04).abs() < 1e-12);
//! assert_eq!(s.p50, 2.0);
//!
//! let mut table = PhaseTable::new();
//! table.push(report::PHASE_MIH_COMMIT, &[0.40, 0.42, 0.41]);
//! table.push(report::PHASE_TOTAL, &total_ms);
//! let text = table.render();
//! assert!(text.starts_with("phase "));
//! assert!(text.contains("MIH HO commit transaction"));
//!
//! let dir = tempfile::tempdir().unwrap();
//! let fig11 = dir.path().join("fig11.svg");
//! report::histogram_svg(&fig11, "Fig. 11: total migration time", "time (ms)", &total_ms, 10)
//!     .unwrap();
//! assert!(std::fs::read_to_string(&fig11).unwrap().starts_with("<svg"));
//! ```

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// Table I row: the MIH handover commit transaction.
pub const PHASE_MIH_COMMIT: &str = "MIH HO commit transaction";
/// Table I row: retrieving the application's context from the service.
pub const PHASE_APP_DATA: &str = "retrieving application data";
/// Table I row: exporting the TCP session contexts (socket data).
pub const PHASE_SOCKET_DATA: &str = "retrieving socket data";
/// Table I row: the CXTP context transfer transaction.
pub const PHASE_CXTP: &str = "CXTP transaction";
/// Table I row: the whole migration, end to end.
pub const PHASE_TOTAL: &str = "total";
/// The rows of Table I, in the order the prototype prints them.
pub const TABLE_I_PHASES: [&str; 5] = [
    PHASE_MIH_COMMIT,
    PHASE_APP_DATA,
    PHASE_SOCKET_DATA,
    PHASE_CXTP,
    PHASE_TOTAL,
];

/// Octets in one KB as this module reports sizes (binary kilobyte, 1024).
pub const OCTETS_PER_KB: f64 = 1024.0;

/// Largest bin count accepted by the histograms; larger requests are clamped.
pub const MAX_BINS: usize = 1000;

/// Width of the SVG images, in pixels.
const SVG_WIDTH: u32 = 800;
/// Height of the SVG images, in pixels.
const SVG_HEIGHT: u32 = 500;
/// Width, in `#` characters, of the longest bar of a text histogram.
const TEXT_BAR_WIDTH: usize = 40;

/// Descriptive statistics of one series of samples.
///
/// * `std` is the *sample* standard deviation (divisor n - 1); it is 0 for a
///   single sample.
/// * `p50` and `p99` are computed by **linear interpolation between closest
///   ranks** (the "R-7" rule, numpy's default): for a sorted series
///   `x[0..n]`, the p-th percentile sits at fractional index
///   `h = (n - 1) * p / 100` and is `x[floor h] + (h - floor h) *
///   (x[floor h + 1] - x[floor h])`. So `p50` is the usual median and `p99`
///   of a short series lies between its two largest values.
///
/// Units are those of the input (milliseconds for phase times, octets or KB
/// for sizes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples used (NaN and infinite samples are not counted).
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1 divisor); 0 when `n == 1`.
    pub std: f64,
    /// Smallest sample.
    pub min: f64,
    /// Median (50th percentile, linear interpolation).
    pub p50: f64,
    /// 99th percentile (linear interpolation).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples`, skipping NaN and infinite values (a broken
    /// clock reading or a division by zero, not a measurement).
    ///
    /// Returns `None` when no finite sample is left.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = mean_of(&sorted);
        let scale = sorted[n - 1].abs().max(sorted[0].abs());
        let std = if n < 2 || scale == 0.0 {
            0.0
        } else {
            // Two-pass formula; deviations are scaled down first so that the
            // squares of huge samples (close to f64::MAX) cannot overflow.
            let sum_sq: f64 = sorted
                .iter()
                .map(|v| {
                    let d = v / scale - mean / scale;
                    d * d
                })
                .sum();
            scale * (sum_sq / (n - 1) as f64).sqrt()
        };
        Some(Summary {
            n,
            mean,
            std,
            min: sorted[0],
            p50: interpolated_percentile(&sorted, 50.0),
            p99: interpolated_percentile(&sorted, 99.0),
            max: sorted[n - 1],
        })
    }
}

/// Mean of a non-empty slice of finite values, without overflowing when the
/// values are near `f64::MAX`.
fn mean_of(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let naive = values.iter().sum::<f64>() / n;
    if naive.is_finite() {
        naive
    } else {
        values.iter().map(|v| v / n).sum()
    }
}

/// Percentile `p` (0..=100) of a sorted, non-empty slice, by linear
/// interpolation between closest ranks.
fn interpolated_percentile(sorted: &[f64], p: f64) -> f64 {
    let last = sorted.len() - 1;
    let h = last as f64 * (p / 100.0);
    let lo = (h.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let frac = h - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if frac == 0.0 || a == b {
        return a;
    }
    let d = b - a;
    let v = if d.is_finite() {
        a + frac * d
    } else {
        // Opposite-sign extremes: b - a overflows, the weighted sum does not.
        a * (1.0 - frac) + b * frac
    };
    // Rounding must not push the result outside its bracket.
    v.clamp(a, b)
}

/// One named row of a [`PhaseTable`]: the phase and the summary of its
/// samples (`None` when the row had no finite sample).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRow {
    /// Phase name, e.g. [`PHASE_CXTP`].
    pub phase: String,
    /// Statistics of the phase's samples, in milliseconds.
    pub summary: Option<Summary>,
}

/// Table of per-phase times in milliseconds, rendered as fixed-width text
/// (Table I): one row per phase with n, mean, std, p50 and p99 to three
/// decimals.
///
/// ```text
/// phase                              n     mean      std      p50      p99   (ms)
/// MIH HO commit transaction         50    0.412    0.051    0.401    0.560
/// total                             50    2.043    0.210    2.011    2.690
/// ```
///
/// The phase column is at least 30 characters wide and grows to fit the
/// longest name; every number column is preceded by at least one space, so
/// very large values widen a line but never run into their neighbour. A row
/// without samples shows `n = 0` and `-` for the statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseTable {
    rows: Vec<PhaseRow>,
}

impl PhaseTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a row for `phase` summarising `samples_ms` (see
    /// [`Summary::of`]). Rows are printed in the order they were pushed.
    pub fn push(&mut self, phase: impl Into<String>, samples_ms: &[f64]) -> &mut Self {
        self.rows.push(PhaseRow {
            phase: phase.into(),
            summary: Summary::of(samples_ms),
        });
        self
    }

    /// The rows pushed so far, e.g. for JSON output.
    pub fn rows(&self) -> &[PhaseRow] {
        &self.rows
    }

    /// The table as text: a header line, then one line per row, each ending
    /// in `\n`.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PhaseTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.phase.chars().count())
            .max()
            .unwrap_or(0)
            .max(30);
        writeln!(
            f,
            "{:<width$} {:>5} {:>8} {:>8} {:>8} {:>8}   (ms)",
            "phase", "n", "mean", "std", "p50", "p99"
        )?;
        for row in &self.rows {
            match &row.summary {
                Some(s) => writeln!(
                    f,
                    "{:<width$} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                    row.phase, s.n, s.mean, s.std, s.p50, s.p99
                )?,
                None => writeln!(
                    f,
                    "{:<width$} {:>5} {:>8} {:>8} {:>8} {:>8}",
                    row.phase, 0, "-", "-", "-", "-"
                )?,
            }
        }
        Ok(())
    }
}

/// Text view of a distribution of sizes given in octets, reported in KB
/// ([`OCTETS_PER_KB`] octets each):
///
/// ```text
/// migration data length: n=50  min 12.01 KB  p50 14.00 KB  mean 14.10 KB  p99 18.20 KB  max 18.50 KB
///     12.01 ..    13.26 KB |########                                  4
///     13.26 ..    14.51 KB |########################################  20
/// ```
///
/// `buckets` equal-width buckets span min..max (clamped to 1..=[`MAX_BINS`]);
/// the last bucket includes max. The fullest bucket gets a bar of 40 `#`,
/// others are scaled to it, and a non-empty bucket always shows at least one
/// `#`. When every size is the same there is a single bucket. An empty input
/// gives the line `<label>: no data`.
pub fn render_size_distribution(label: &str, octets: &[u64], buckets: usize) -> String {
    let kb: Vec<f64> = octets.iter().map(|&o| o as f64 / OCTETS_PER_KB).collect();
    let Some(s) = Summary::of(&kb) else {
        return format!("{label}: no data\n");
    };
    let mut out = format!(
        "{label}: n={}  min {:.2} KB  p50 {:.2} KB  mean {:.2} KB  p99 {:.2} KB  max {:.2} KB\n",
        s.n, s.min, s.p50, s.mean, s.p99, s.max
    );
    let buckets = if s.min == s.max { 1 } else { buckets };
    let Some(bins) = Bins::of(&kb, buckets) else {
        return out;
    };
    let max_count = bins.counts.iter().copied().max().unwrap_or(0).max(1);
    for (i, &count) in bins.counts.iter().enumerate() {
        let (lo, hi) = if s.min == s.max {
            (s.min, s.max)
        } else {
            bins.edges(i)
        };
        let mut bar = count * TEXT_BAR_WIDTH / max_count;
        if count > 0 && bar == 0 {
            bar = 1;
        }
        out.push_str(&format!(
            "{lo:>10.2} .. {hi:>10.2} KB |{:<TEXT_BAR_WIDTH$}  {count}\n",
            "#".repeat(bar)
        ));
    }
    out
}

/// Error from [`histogram_svg`] / [`histogram_svg_string`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The series had no finite value, so there is nothing to draw. No file
    /// is written in that case: an empty figure in a report would look like
    /// a result.
    #[error("no finite values to plot")]
    NoData,
    /// Writing the SVG file failed.
    #[error("writing the histogram image: {0}")]
    Io(#[from] std::io::Error),
    /// The values span more than `f64::MAX` (e.g. both `-f64::MAX` and
    /// `f64::MAX`), so no x axis can be drawn. No file is written.
    #[error("values span more than f64::MAX; no axis can be drawn")]
    Range,
    /// plotters refused to draw the chart.
    #[error("drawing the histogram: {0}")]
    Plot(String),
}

/// Equal-width bins over the finite values of a series.
#[derive(Debug, Clone, PartialEq)]
struct Bins {
    /// Left edge of the first bin.
    lo: f64,
    /// Right edge of the last bin.
    hi: f64,
    /// Number of values in each bin.
    counts: Vec<usize>,
}

impl Bins {
    /// Sorts the finite `values` into `bins` (clamped to 1..=MAX_BINS)
    /// equal-width bins spanning min..max; the last bin is closed on the
    /// right. When all values are equal the span is widened around that
    /// value so the bins still have a positive width. `None` when there is
    /// no finite value.
    fn of(values: &[f64], bins: usize) -> Option<Bins> {
        let bins = bins.clamp(1, MAX_BINS);
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let min = finite().reduce(f64::min)?;
        let max = finite().reduce(f64::max)?;
        let (lo, hi) = if min < max {
            (min, max)
        } else {
            let half = (min.abs() * 0.05).max(0.5);
            ((min - half).max(-f64::MAX), (min + half).min(f64::MAX))
        };
        // Work in half-scale if the span itself overflows (e.g. -MAX..MAX).
        let scale = if (hi - lo).is_finite() { 1.0 } else { 0.5 };
        let span = hi * scale - lo * scale;
        let mut counts = vec![0usize; bins];
        for v in finite() {
            let pos = (v * scale - lo * scale) / span * bins as f64;
            // Float-to-int casts saturate, and NaN maps to 0.
            let idx = (pos as usize).min(bins - 1);
            counts[idx] += 1;
        }
        Some(Bins { lo, hi, counts })
    }

    /// Left and right edge of bin `i`.
    fn edges(&self, i: usize) -> (f64, f64) {
        let n = self.counts.len() as f64;
        // Weighted form: no overflow even when hi - lo exceeds f64::MAX.
        let at = |k: f64| {
            let t = k / n;
            self.lo * (1.0 - t) + self.hi * t
        };
        let right = if i + 1 == self.counts.len() {
            self.hi
        } else {
            at(i as f64 + 1.0)
        };
        (at(i as f64), right)
    }
}

/// Writes to `path` an SVG histogram of `values`: `bins` equal-width bars
/// (clamped to 1..=[`MAX_BINS`]) from the smallest to the largest value,
/// with `title` above the chart, `x_label` under the x axis and "count" on
/// the y axis. A line under the title gives n, p50, p99 and max, so a
/// squeezed chart (one huge outlier stretches the x axis and packs every
/// other value into the first bar) can still be read.
///
/// NaN and infinite values are skipped. If nothing is left, returns
/// [`ReportError::NoData`] and writes no file; if the values are so far
/// apart that max - min overflows `f64` (only possible near `±f64::MAX`),
/// returns [`ReportError::Range`], again without writing. When all values are equal,
/// the x axis is widened around that value (±5 %, at least ±0.5) and a
/// single bar shows them all. The parent directory must exist.
///
/// Use it for Fig. 11 (total migration time, `x_label` "time (ms)") and
/// Fig. 12 (migration data length in KB, octets divided by
/// [`OCTETS_PER_KB`]).
pub fn histogram_svg(
    path: &Path,
    title: &str,
    x_label: &str,
    values: &[f64],
    bins: usize,
) -> Result<(), ReportError> {
    let svg = histogram_svg_string(title, x_label, values, bins)?;
    std::fs::write(path, svg)?;
    Ok(())
}

/// The SVG document that [`histogram_svg`] writes, as a string.
pub fn histogram_svg_string(
    title: &str,
    x_label: &str,
    values: &[f64],
    bins: usize,
) -> Result<String, ReportError> {
    use plotters::prelude::*;

    let summary = Summary::of(values).ok_or(ReportError::NoData)?;
    let bins = Bins::of(values, bins).ok_or(ReportError::NoData)?;
    if !(bins.hi - bins.lo).is_finite() {
        // plotters' tick placement cannot cope with an infinite span.
        return Err(ReportError::Range);
    }
    let plot_err = |e: DrawingAreaErrorKind<_>| ReportError::Plot(e.to_string());

    let max_count = bins.counts.iter().copied().max().unwrap_or(0);
    // Headroom above the tallest bar; at least 1 so the y range is not empty.
    let y_top = u32::try_from(max_count + max_count / 10 + 1).unwrap_or(u32::MAX);
    let stats = format!(
        "n = {},  p50 = {},  p99 = {},  max = {}",
        summary.n,
        short_number(summary.p50),
        short_number(summary.p99),
        short_number(summary.max)
    );

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SVG_WIDTH, SVG_HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(plot_err)?;
        root.draw(&Text::new(
            stats,
            (70, 4),
            ("sans-serif", 14).into_font().color(&BLACK.mix(0.7)),
        ))
        .map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .margin_top(24)
            .margin_left(10)
            .margin_right(25)
            .margin_bottom(10)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(bins.lo..bins.hi, 0u32..y_top)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(x_label)
            .y_desc("count")
            .x_label_formatter(&|v| short_number(*v))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 13))
            .draw()
            .map_err(plot_err)?;
        let bar_style = RGBColor(0x3b, 0x6e, 0xa8).filled();
        let edge_style = RGBColor(0x1f, 0x3b, 0x5c).stroke_width(1);
        let bars = bins.counts.iter().enumerate().filter(|(_, &c)| c > 0);
        chart
            .draw_series(bars.clone().map(|(i, &c)| {
                let (x0, x1) = bins.edges(i);
                let c = u32::try_from(c).unwrap_or(u32::MAX);
                Rectangle::new([(x0, 0), (x1, c)], bar_style)
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(bars.map(|(i, &c)| {
                let (x0, x1) = bins.edges(i);
                let c = u32::try_from(c).unwrap_or(u32::MAX);
                Rectangle::new([(x0, 0), (x1, c)], edge_style)
            }))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Compact label for an axis tick or a statistic: up to 4 significant
/// decimals for ordinary magnitudes, scientific notation for very large or
/// very small ones.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn summary_of_hand_computed_series() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32,
        // sample variance 32 / 7.
        let s = Summary::of(&[9.0, 4.0, 2.0, 4.0, 5.0, 4.0, 7.0, 5.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!(close(s.mean, 5.0));
        assert!(close(s.std, (32.0f64 / 7.0).sqrt()));
        assert_eq!(s.min, 2.0);
        assert_eq!(s.max, 9.0);
        // h = 7 * 0.5 = 3.5 -> between x[3] = 4 and x[4] = 5.
        assert!(close(s.p50, 4.5));
        // h = 7 * 0.99 = 6.93 -> 7 + 0.93 * (9 - 7).
        assert!(close(s.p99, 8.86));
    }

    #[test]
    fn summary_percentiles_of_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v).unwrap();
        assert!(close(s.mean, 50.5));
        // h = 99 * 0.5 = 49.5 -> 50.5; h = 99 * 0.99 = 98.01 -> 99.01.
        assert!(close(s.p50, 50.5));
        assert!(close(s.p99, 99.01));
        // Sample variance of 1..=n is n(n+1)/12.
        assert!(close(s.std, (100.0f64 * 101.0 / 12.0).sqrt()));
    }

    #[test]
    fn summary_edge_cases() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN, f64::INFINITY]), None);

        let one = Summary::of(&[3.25]).unwrap();
        assert_eq!(
            one,
            Summary {
                n: 1,
                mean: 3.25,
                std: 0.0,
                min: 3.25,
                p50: 3.25,
                p99: 3.25,
                max: 3.25
            }
        );

        let with_nan = Summary::of(&[1.0, f64::NAN, 3.0, f64::NEG_INFINITY]).unwrap();
        assert_eq!(with_nan.n, 2);
        assert!(close(with_nan.mean, 2.0));
        assert!(close(with_nan.std, 2.0f64.sqrt()));

        let equal = Summary::of(&[0.5; 7]).unwrap();
        assert_eq!(equal.std, 0.0);
        assert_eq!(equal.p99, 0.5);

        // Extremes must not overflow to infinity or NaN.
        let huge = Summary::of(&[f64::MAX, 0.0, f64::MAX]).unwrap();
        assert!(huge.mean.is_finite() && huge.std.is_finite());
        assert!(huge.p50.is_finite() && huge.p99.is_finite());
    }

    #[test]
    fn summary_serialises_to_json() {
        let s = Summary::of(&[1.0, 2.0]).unwrap();
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["n"], 2);
        assert_eq!(json["mean"], 1.5);
        assert_eq!(json["max"], 2.0);
    }

    #[test]
    fn phase_table_renders_fixed_width() {
        let mut t = PhaseTable::new();
        t.push(PHASE_MIH_COMMIT, &[0.4, 0.5, 0.45])
            .push(PHASE_CXTP, &[])
            .push(PHASE_TOTAL, &[2.0]);
        let text = t.render();
        let expected = "\
phase                              n     mean      std      p50      p99   (ms)
MIH HO commit transaction          3    0.450    0.050    0.450    0.499
CXTP transaction                   0        -        -        -        -
total                              1    2.000    0.000    2.000    2.000
";
        assert_eq!(text, expected);
        assert_eq!(t.rows().len(), 3);
        assert_eq!(t.rows()[1].summary, None);
        let json = serde_json::to_string(&t.rows()).unwrap();
        assert!(json.contains("\"phase\":\"total\""));
    }

    #[test]
    fn phase_table_widens_for_long_names_and_big_values() {
        let long = "a phase name that is longer than thirty characters";
        let mut t = PhaseTable::new();
        t.push(long, &[123_456_789.0]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        // The numbers start in the same column in both lines.
        assert_eq!(lines[0].find(" n ").map(|i| i + 1), Some(long.len() + 5));
        assert!(lines[1].starts_with(long));
        assert!(lines[1].contains(" 123456789.000 123456789.000"));
        assert_eq!(PhaseTable::new().render().lines().count(), 1);
    }

    #[test]
    fn size_distribution_text() {
        // 1 KB x3, 2 KB, 3 KB -> 2 buckets over 1..3 KB: [1, 2) and [2, 3].
        let octets = [1024, 1024, 1024, 2048, 3072];
        let text = render_size_distribution("migration data length", &octets, 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "migration data length: n=5  min 1.00 KB  p50 1.00 KB  mean 1.60 KB  p99 2.96 KB  max 3.00 KB"
        );
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("      1.00 ..       2.00 KB |###"));
        assert!(lines[1].ends_with(&format!("{}  3", "#".repeat(40))));
        let bar2 = lines[2].chars().filter(|&c| c == '#').count();
        assert_eq!(bar2, 26); // 2 * 40 / 3
        assert!(lines[2].ends_with("  2"));

        assert_eq!(render_size_distribution("x", &[], 5), "x: no data\n");
        let same = render_size_distribution("x", &[2048; 4], 10);
        assert_eq!(same.lines().count(), 2);
        assert!(same.lines().nth(1).unwrap().ends_with("  4"));
        // Zero buckets is treated as one.
        assert_eq!(
            render_size_distribution("x", &[1, 5000], 0).lines().count(),
            2
        );
    }

    #[test]
    fn size_distribution_small_bucket_still_shows() {
        let mut octets = vec![1000u64; 500];
        octets.push(100_000);
        let text = render_size_distribution("len", &octets, 4);
        let last = text.lines().last().unwrap();
        assert!(last.contains("|# "), "{last}");
        assert!(last.ends_with("  1"));
    }

    #[test]
    fn bins_cover_all_values() {
        let b = Bins::of(&[0.0, 1.0, 2.0, 3.0, 4.0], 4).unwrap();
        assert_eq!((b.lo, b.hi), (0.0, 4.0));
        assert_eq!(b.counts, vec![1, 1, 1, 2]);
        assert_eq!(b.edges(0), (0.0, 1.0));
        assert_eq!(b.edges(3), (3.0, 4.0));

        let same = Bins::of(&[10.0, 10.0], 5).unwrap();
        assert!(same.lo < 10.0 && same.hi > 10.0);
        assert_eq!(same.counts.iter().sum::<usize>(), 2);

        let wide = Bins::of(&[-f64::MAX, 0.0, f64::MAX], 2).unwrap();
        assert_eq!(wide.counts, vec![1, 2]);

        assert_eq!(Bins::of(&[f64::NAN], 3), None);
        assert_eq!(
            Bins::of(&[1.0, 2.0], 10_000).unwrap().counts.len(),
            MAX_BINS
        );
    }

    fn assert_svg(path: &Path, title: &str, x_label: &str) {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        // The SVG backend puts each text on a line of its own.
        let has_text = |t: &str| svg.lines().any(|l| l.trim() == t);
        assert!(has_text(title), "title missing");
        assert!(has_text(x_label), "x label missing");
        assert!(has_text("count"), "y label missing");
    }

    #[test]
    fn svg_histogram_normal_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fig11.svg");
        let values: Vec<f64> = (0..200).map(|i| 2.0 + f64::from(i % 17) * 0.05).collect();
        histogram_svg(
            &path,
            "Fig. 11: total migration time",
            "time (ms)",
            &values,
            20,
        )
        .unwrap();
        assert_svg(&path, "Fig. 11: total migration time", "time (ms)");
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("n = 200,"));
        assert!(svg.contains("<rect"));
    }

    #[test]
    fn svg_histogram_edge_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<f64>, usize); 9] = [
            ("single", vec![42.0], 10),
            ("equal", vec![0.4; 50], 10),
            ("zero", vec![0.0, 0.0], 10),
            ("outlier", vec![1.0, 1.1, 1.2, 0.9, 1e9], 30),
            ("outlier low", vec![-1e12, 5.0, 6.0, 7.0], 30),
            ("near max", vec![f64::MAX, f64::MAX / 3.0, 1.0], 5),
            ("tiny", vec![1e-300, 2e-300, 3e-300], 3),
            ("nan mixed", vec![f64::NAN, 3.0, f64::INFINITY, 4.0], 0),
            ("many bins", vec![1.0, 2.0, 3.0], usize::MAX),
        ];
        for (i, (name, values, bins)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("case{i}.svg"));
            let title = format!("Fig. 12: {name}");
            histogram_svg(&path, &title, "size (KB)", values, *bins)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_svg(&path, &title, "size (KB)");
        }
    }

    #[test]
    fn svg_histogram_overflowing_span_is_an_error() {
        let err = histogram_svg_string("t", "x", &[-f64::MAX, f64::MAX], 5).unwrap_err();
        assert!(matches!(err, ReportError::Range), "{err}");
        // A huge but representable span still draws.
        assert!(histogram_svg_string("t", "x", &[-1e307, 1e307], 5).is_ok());
    }

    #[test]
    fn svg_histogram_escapes_markup() {
        let svg = histogram_svg_string("a < b & c", "x <ms>", &[1.0, 2.0], 2).unwrap();
        assert!(svg.contains("a &lt; b &amp; c"));
        assert!(!svg.contains("x <ms>"));
    }

    #[test]
    fn svg_histogram_empty_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        let err = histogram_svg(&path, "t", "x", &[], 10).unwrap_err();
        assert!(matches!(err, ReportError::NoData));
        let err = histogram_svg(&path, "t", "x", &[f64::NAN], 10).unwrap_err();
        assert!(matches!(err, ReportError::NoData));
        assert!(!path.exists());
    }

    #[test]
    fn svg_histogram_reports_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("fig.svg");
        let err = histogram_svg(&path, "t", "x", &[1.0], 10).unwrap_err();
        assert!(matches!(err, ReportError::Io(_)), "{err}");
    }

    mod arbitrary {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]

            /// Arbitrary floats (NaN, infinities, subnormals, extremes) and
            /// bin counts never make the summary or the chart panic or hang.
            #[test]
            fn input_never_panics(
                values in proptest::collection::vec(
                    prop_oneof![
                        proptest::num::f64::ANY,
                        -1e6..1e6f64,
                        (-300i32..300).prop_map(|e| 10f64.powi(e)),
                    ],
                    0..40,
                ),
                bins in 0usize..300,
            ) {
                if let Some(s) = Summary::of(&values) {
                    prop_assert!(s.min <= s.p50 && s.p50 <= s.p99 && s.p99 <= s.max);
                }
                match histogram_svg_string("t", "x", &values, bins) {
                    Ok(svg) => prop_assert!(svg.starts_with("<svg")),
                    Err(ReportError::NoData | ReportError::Range) => {}
                    Err(e) => prop_assert!(false, "{}", e),
                }
                let octets: Vec<u64> = values.iter().map(|v| v.abs() as u64).collect();
                render_size_distribution("len", &octets, bins);
            }
        }
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short_number(0.0), "0");
        assert_eq!(short_number(2.5), "2.5");
        assert_eq!(short_number(12.0), "12");
        assert_eq!(short_number(0.41234), "0.4123");
        assert_eq!(short_number(1e9), "1.000e9");
        assert_eq!(short_number(-1e-5), "-1.000e-5");
    }
}
