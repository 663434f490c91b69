//! The charts the bench draws itself (SVG, with `plotters`), next to the report: the rows
//! hand their raw figures here as they finish, and the harness draws whatever the run has.
//!
//! - `p1.svg`: time to a synced cache, Panoptes against kube-runtime and fetch+decode;
//! - `p2.svg`: event→handler latency distribution (CDF, log scale), Panoptes against
//!   kube-runtime, at each rate P2 asked for;
//! - `p3.svg`: heap per cached pod, every variant P3 (and P7's extrapolation) measured;
//! - `p7.svg`: the runtime process's RSS over time while 50 clusters sync and churn.
//!
//! A row that did not run (`--only`) or failed leaves its chart out; nothing is drawn from
//! figures of another run. A row records with one call (`record_*`), so its own logic stays
//! its own; the figures wait in one process-wide slot until [`write`] drains it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use parking_lot::Mutex;
use plotters::prelude::*;

/// P1's best times, in seconds.
#[derive(Debug, Clone)]
pub struct P1Times {
    pub pods: usize,
    pub panoptes: f64,
    pub kube_runtime: f64,
    pub fetch_decode: f64,
}

/// One latency distribution of P2: `quantiles[i]` is the latency in ms at quantile
/// `i / (quantiles.len() - 1)`.
#[derive(Debug, Clone)]
pub struct LatencyCurve {
    pub label: String,
    pub quantiles_ms: Vec<f64>,
}

/// P7's series, sampled once a second.
#[derive(Debug, Clone, Default)]
pub struct P7Series {
    pub title: String,
    /// `(seconds since the runtime started, RSS in bytes)`.
    pub rss: Vec<(f64, u64)>,
    /// Seconds at which every cluster had synced.
    pub synced_at: Option<f64>,
    /// Seconds at which the churn started and ended.
    pub churn: Option<(f64, f64)>,
    /// The goal, in bytes.
    pub goal_bytes: u64,
}

#[derive(Debug, Default)]
struct Figures {
    p1: Option<P1Times>,
    p2: Vec<LatencyCurve>,
    /// `(variant, bytes per pod)`.
    p3: Vec<(String, f64)>,
    p7: Option<P7Series>,
}

static FIGURES: Mutex<Figures> = Mutex::new(Figures {
    p1: None,
    p2: Vec::new(),
    p3: Vec::new(),
    p7: None,
});

pub fn record_p1(times: P1Times) {
    FIGURES.lock().p1 = Some(times);
}

/// Adds a curve from latencies in nanoseconds (any order); 201 quantiles are kept.
pub fn record_p2(label: impl Into<String>, latencies_ns: &[u64]) {
    if latencies_ns.is_empty() {
        return;
    }
    let mut sorted = latencies_ns.to_vec();
    sorted.sort_unstable();
    let last = sorted.len() - 1;
    let quantiles_ms = (0..=200)
        .map(|i| sorted[last * i / 200] as f64 / 1e6)
        .collect();
    FIGURES.lock().p2.push(LatencyCurve {
        label: label.into(),
        quantiles_ms,
    });
}

/// Adds one bar of the heap chart.
pub fn record_p3(variant: impl Into<String>, bytes_per_pod: f64) {
    FIGURES.lock().p3.push((variant.into(), bytes_per_pod));
}

/// kube-runtime's default store, bytes per pod, if P3 measured it in this run.
pub fn kube_runtime_bytes_per_pod() -> Option<f64> {
    FIGURES
        .lock()
        .p3
        .iter()
        .find(|(variant, _)| variant == KUBE_DEFAULT)
        .map(|(_, bytes)| *bytes)
}

/// The P3 variant name [`kube_runtime_bytes_per_pod`] looks for.
pub const KUBE_DEFAULT: &str = "kube-runtime default store";

pub fn record_p7(series: P7Series) {
    FIGURES.lock().p7 = Some(series);
}

/// Draws every chart this run has figures for into `dir`; returns the files written.
pub fn write(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let figures = std::mem::take(&mut *FIGURES.lock());
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut draw = |name: &str, result: anyhow::Result<()>| -> anyhow::Result<()> {
        let path = dir.join(name);
        result.with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    if let Some(p1) = &figures.p1 {
        let bars = [
            ("Panoptes".to_string(), p1.panoptes),
            ("kube-runtime".to_string(), p1.kube_runtime),
            ("fetch+decode only".to_string(), p1.fetch_decode),
        ];
        let title = format!("P1: time to a synced cache of {} pods (s)", p1.pods);
        draw(
            "p1.svg",
            bar_chart(&dir.join("p1.svg"), &title, "seconds", &bars, |v| {
                format!("{v:.2} s")
            }),
        )?;
    }
    if !figures.p2.is_empty() {
        draw("p2.svg", latency_chart(&dir.join("p2.svg"), &figures.p2))?;
    }
    if !figures.p3.is_empty() {
        let bars: Vec<(String, f64)> = figures
            .p3
            .iter()
            .map(|(name, bytes)| (name.clone(), bytes / 1024.0))
            .collect();
        draw(
            "p3.svg",
            bar_chart(
                &dir.join("p3.svg"),
                "P3: heap per cached pod (KB)",
                "KB per pod",
                &bars,
                |v| format!("{v:.1} KB"),
            ),
        )?;
    }
    if let Some(p7) = &figures.p7 {
        draw("p7.svg", rss_chart(&dir.join("p7.svg"), p7))?;
    }
    Ok(written)
}

const SIZE: (u32, u32) = (860, 420);
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Horizontal bars, one per `(label, value)`, the label inside the plot and the value at the
/// bar's end (labels of any length fit, which category axes would cut).
fn bar_chart(
    path: &Path,
    title: &str,
    unit: &str,
    bars: &[(String, f64)],
    show: impl Fn(f64) -> String,
) -> anyhow::Result<()> {
    let height = 90 + 44 * bars.len() as u32;
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let most = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let rows = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(8)
        .build_cartesian_2d(0.0..most * 1.3, 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(unit)
        .draw()?;
    for (i, (label, value)) in bars.iter().enumerate() {
        // The first bar on top.
        let y = rows - i as f64;
        let colour = COLOURS[i % COLOURS.len()];
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, y - 0.8), (*value, y - 0.2)],
            colour.mix(0.75).filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{label}: {}", show(*value)),
            (most * 0.01, y - 0.5),
            ("sans-serif", 15).into_font().color(&BLACK),
        )))?;
    }
    root.present()?;
    Ok(())
}

/// One CDF per curve: x the latency (ms, log scale), y the share of events at most that late.
fn latency_chart(path: &Path, curves: &[LatencyCurve]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let all = curves.iter().flat_map(|c| c.quantiles_ms.iter().copied());
    let (low, high) = all.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let low = (low * 0.8).max(1e-3);
    let high = (high * 1.25).max(low * 10.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "P2: event→handler latency, share of events at most x ms late",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((low..high).log_scale(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("% of events")
        .draw()?;
    for (i, curve) in curves.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let last = (curve.quantiles_ms.len() - 1).max(1) as f64;
        let points = curve
            .quantiles_ms
            .iter()
            .enumerate()
            .map(|(q, ms)| (ms.max(low), q as f64 * 100.0 / last));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

const GIB: f64 = (1u64 << 30) as f64;

/// RSS over time, with the goal as a dashed line and the sync and churn marked.
fn rss_chart(path: &Path, series: &P7Series) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let end = series.rss.last().map_or(1.0, |(t, _)| *t).max(1.0);
    let goal = series.goal_bytes as f64 / GIB;
    let most = series
        .rss
        .iter()
        .map(|(_, b)| *b as f64 / GIB)
        .fold(goal, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(series.title.as_str(), ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        // Room on the right for the last mark's label.
        .build_cartesian_2d(0.0..end * 1.12, 0.0..most * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the runtime started")
        .y_desc("RSS (GiB)")
        .draw()?;
    let rss = COLOURS[0];
    chart
        .draw_series(LineSeries::new(
            series.rss.iter().map(|(t, b)| (*t, *b as f64 / GIB)),
            rss.stroke_width(2),
        ))?
        .label("runtime process RSS")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], rss.stroke_width(2)));
    let red = COLOURS[1];
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, goal), (end, goal)],
            6,
            4,
            red.stroke_width(1),
        ))?
        .label(format!("goal ≤ {goal:.0} GiB"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    let mut marks = Vec::new();
    if let Some(t) = series.synced_at {
        marks.push((t, "all synced"));
    }
    if let Some((from, to)) = series.churn {
        marks.push((from, "churn starts"));
        marks.push((to, "churn ends"));
    }
    let grey = RGBColor(110, 110, 110);
    for (i, (t, label)) in marks.into_iter().enumerate() {
        chart.draw_series(DashedLineSeries::new(
            [(t, 0.0), (t, most * 1.1)],
            3,
            3,
            grey.stroke_width(1),
        ))?;
        // Staggered, so marks close in time (synced, then the churn at once) stay readable.
        chart.draw_series(std::iter::once(Text::new(
            label,
            (t + end * 0.005, most * (1.12 - 0.05 * i as f64)),
            ("sans-serif", 13).into_font().color(&grey),
        )))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
