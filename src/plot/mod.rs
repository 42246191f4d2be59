//! Figures that show inline in evcxr, save as SVG and render to PNG.
//!
//! Every chart builder ends in `.draw()` and returns a [`Figure`]. In a notebook
//! cell, a `Figure` as the last expression shows as `image/svg+xml`; in the CLI
//! and in tests, [`Figure::save_svg`] and [`Figure::save_png`] write files.
//!
//! - [`LineChart`]: several series, optional EMA smoothing, log y axis, shaded bands.
//!
//! Legends sit in a strip below the axis labels, outside the plot area, so
//! they never cover data.
//! - [`Heatmap`]: a matrix with a colour bar and optional row/column labels.
//! - [`BarChart`]: labelled bars with optional error bars.
//! - [`Histogram`]: one or more distributions (integer data: one bar per integer).
//! - [`ScatterPlot`]: groups of points and lines, legend beside the plot.
//! - [`diagrams`]: concept diagrams (the phases of RLHF, value network vs reward model).

mod bar;
pub mod diagrams;
mod figure;
mod frame;
mod heatmap;
mod histogram;
mod legend;
mod line;
mod scatter;
mod ticks;

pub use bar::BarChart;
pub use figure::{Figure, MAX_PNG_PIXELS};
pub use heatmap::Heatmap;
pub use histogram::{Histogram, MAX_INTEGER_BINS};
pub use line::{ema_smooth, LineChart};
pub use scatter::ScatterPlot;

use plotters::style::RGBColor;

/// Text made safe inside SVG/XML: `&`, `<`, `>` and `"` escaped.
pub fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Tableau-10 palette: series i gets `palette(i)`.
pub fn palette(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

/// Padded `[lo, hi]` covering finite values (a unit range around a constant).
pub(crate) fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let p = (hi - lo) * pad;
    (lo - p, hi + p)
}

pub(crate) const FONT: &str = "sans-serif";
