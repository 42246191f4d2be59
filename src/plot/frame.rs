//! The frame every chart shares, so a figure's look is set in one place: a
//! white SVG canvas ([`render`]), the title, margins and label areas
//! ([`Frame`]), the mesh with light grid lines and compact ticks ([`mesh`]),
//! and the legend box ([`legend`]). Each chart draws only its own marks.

use super::{Figure, FONT};
use anyhow::Result;
use plotters::chart::{MeshStyle, SeriesLabelStyle};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

/// The drawing area of a figure.
pub(crate) type Canvas<'b> = DrawingArea<SVGBackend<'b>, Shift>;

/// An x–y chart on a figure's canvas, both axes continuous.
pub(crate) type Chart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draw a figure of `size` pixels: `draw` paints on a white canvas, and the
/// SVG it leaves is the [`Figure`].
pub(crate) fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Canvas<'_>) -> Result<()>,
) -> Result<Figure> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(Figure::from_svg(svg, size.0, size.1))
}

/// Title, margin and label areas of an x–y chart, in pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'t> {
    pub title: &'t str,
    pub title_size: u32,
    pub margin: u32,
    /// Below the plot: tick labels and the x axis title.
    pub x_label_area: u32,
    /// Left of the plot: tick labels and the y axis title.
    pub y_label_area: u32,
}

impl<'t> Frame<'t> {
    /// The house style: an 18 px title, a 12 px margin, 40 px below and
    /// 64 px left for the labels.
    pub fn new(title: &'t str) -> Self {
        Self {
            title,
            title_size: 18,
            margin: 12,
            x_label_area: 40,
            y_label_area: 64,
        }
    }

    /// The chart on `area` over `x` × `y`.
    pub fn build<'a, 'b>(
        &self,
        area: &'a Canvas<'b>,
        x: Range<f64>,
        y: Range<f64>,
    ) -> Result<Chart<'a, 'b>> {
        Ok(ChartBuilder::on(area)
            .caption(self.title, (FONT, self.title_size))
            .margin(self.margin)
            .x_label_area_size(self.x_label_area)
            .y_label_area_size(self.y_label_area)
            .build_cartesian_2d(x, y)?)
    }
}

/// The house mesh: light grey grid lines and [`format_tick`] labels on both
/// axes. The caller adds axis titles (and overrides what differs) and draws.
pub(crate) fn mesh<'a, 'c, 'b>(
    chart: &'c mut Chart<'a, 'b>,
) -> MeshStyle<'a, 'c, RangedCoordf64, RangedCoordf64, SVGBackend<'b>> {
    let mut m = chart.configure_mesh();
    m.x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(235, 235, 235));
    m
}

/// The house legend of a chart's labelled series: a translucent white box
/// with a grey border, 13 px labels. The caller may place it, then draws.
pub(crate) fn legend<'a, 'c, 'b>(
    chart: &'c mut Chart<'a, 'b>,
) -> SeriesLabelStyle<'a, 'c, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>
where
    'b: 'a,
{
    let mut l = chart.configure_series_labels();
    l.background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 13));
    l
}

fn tick(v: &f64) -> String {
    format_tick(*v)
}

/// Compact tick labels: 1200 → "1200", 0.000123 → "1.2e-4", 2.5 → "2.5".
pub(crate) fn format_tick(v: f64) -> String {
    let a = v.abs();
    if a < 1e-12 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 || v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}
