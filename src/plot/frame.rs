//! The frame every chart shares, so a figure's look is set in one place: a
//! white SVG canvas ([`render`]), the title, margins and label areas
//! ([`Frame`]), the mesh with light grid lines and compact ticks ([`mesh`]),
//! and the legend, in a strip below the axis labels ([`super::legend`]), so
//! it never covers data. Each chart draws only its own marks.

use super::legend::{self, LegendEntry, Rect};
use super::{Figure, FONT};
use anyhow::Result;
use plotters::chart::MeshStyle;
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
    /// The legend, drawn in a strip below the x axis title (none if empty).
    pub legend: &'t [LegendEntry],
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
            legend: &[],
        }
    }

    /// The legend's boxes on a canvas of `size` pixels, in a strip at the
    /// bottom, below the label area, from the plot's left edge; and the
    /// strip's height (0 without a legend).
    pub fn legend_strip(&self, size: (u32, u32)) -> (Vec<Rect>, u32) {
        let left = (self.margin + self.y_label_area) as i32;
        let right = size.0.saturating_sub(self.margin) as i32;
        let mut boxes = legend::layout(self.legend, left, right);
        let height = legend::strip_height(&boxes);
        let top = size.1.saturating_sub(self.margin + height) as i32 + 4;
        for b in &mut boxes {
            b.y0 += top;
            b.y1 += top;
        }
        (boxes, height)
    }

    /// The chart on `area` over `x` × `y`.
    pub fn build<'a, 'b>(
        &self,
        area: &'a Canvas<'b>,
        x: Range<f64>,
        y: Range<f64>,
    ) -> Result<Chart<'a, 'b>> {
        let (boxes, strip) = self.legend_strip(area.dim_in_pixel());
        legend::draw(area, self.legend, &boxes)?;
        Ok(ChartBuilder::on(area)
            .caption(self.title, (FONT, self.title_size))
            .margin(self.margin)
            .margin_bottom(self.margin + strip)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The legend lies outside the plot: no data point's pixel is covered,
    /// however many entries wrap into rows.
    #[test]
    fn legend_covers_no_data_point() {
        let entries: Vec<LegendEntry> = (0..7)
            .map(|i| LegendEntry::line(format!("series number {i}"), BLACK, 2, i % 2 == 1))
            .collect();
        let size = (640, 400);
        let mut svg = String::new();
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let frame = Frame {
            legend: &entries,
            ..Frame::new("legend test")
        };
        let chart = frame.build(&root, 0.0..1.0, 0.0..1.0).unwrap();
        let (boxes, strip) = frame.legend_strip(size);
        assert!(strip >= 40, "two rows or more: {strip}");
        assert_eq!(boxes.len(), entries.len());
        assert!(boxes.iter().any(|b| b.y0 != boxes[0].y0), "wraps into rows");
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let plot = Rect {
            x0: xr.start,
            y0: yr.start,
            x1: xr.end,
            y1: yr.end,
        };
        for b in &boxes {
            assert!(!b.intersects(&plot), "legend {b:?} over the plot {plot:?}");
            assert!(b.y1 <= size.1 as i32 && b.x0 >= 0, "{b:?} off the canvas");
            for i in 0..=20 {
                for j in 0..=20 {
                    let p = chart.backend_coord(&(i as f64 / 20.0, j as f64 / 20.0));
                    assert!(!b.contains(p), "legend {b:?} covers data at {p:?}");
                }
            }
        }
    }
}
