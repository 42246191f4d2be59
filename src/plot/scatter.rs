use super::frame::{mesh, render, Frame};
use super::{padded_range, palette, Figure, FONT};
use anyhow::{ensure, Result};
use plotters::prelude::*;

#[derive(Debug, Clone)]
struct Points {
    name: String,
    xs: Vec<f64>,
    ys: Vec<f64>,
    line: bool,
    markers: bool,
}

/// Points in groups (one colour each), optionally joined lines (fits, a
/// diagonal). The legend sits in its own panel right of the plot, so it never
/// covers data.
#[derive(Debug, Clone)]
pub struct ScatterPlot {
    title: String,
    x_label: String,
    y_label: String,
    groups: Vec<Points>,
    size: (u32, u32),
    legend_width: u32,
}

impl ScatterPlot {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            groups: Vec::new(),
            size: (720, 420),
            legend_width: 170,
        }
    }

    pub fn x_label(mut self, s: impl Into<String>) -> Self {
        self.x_label = s.into();
        self
    }

    pub fn y_label(mut self, s: impl Into<String>) -> Self {
        self.y_label = s.into();
        self
    }

    /// A group of points `(xs[i], ys[i])`.
    pub fn points(mut self, name: impl Into<String>, xs: &[f64], ys: &[f64]) -> Self {
        self.groups.push(Points {
            name: name.into(),
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            line: false,
            markers: true,
        });
        self
    }

    /// A line through `(xs[i], ys[i])` in order (a fitted curve, y = x, …).
    pub fn line(mut self, name: impl Into<String>, xs: &[f64], ys: &[f64]) -> Self {
        self.groups.push(Points {
            name: name.into(),
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            line: true,
            markers: false,
        });
        self
    }

    /// Points joined in order by a line of the same colour (a path, such as a
    /// training run's measurements).
    pub fn path(mut self, name: impl Into<String>, xs: &[f64], ys: &[f64]) -> Self {
        self.groups.push(Points {
            name: name.into(),
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            line: true,
            markers: true,
        });
        self
    }

    /// Width of the legend panel in pixels (170 unless set).
    pub fn legend_width(mut self, width: u32) -> Self {
        self.legend_width = width;
        self
    }

    /// Total size in pixels (the legend panel included).
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    pub fn draw(&self) -> Result<Figure> {
        ensure!(
            !self.groups.is_empty(),
            "scatter plot `{}`: no points",
            self.title
        );
        for g in &self.groups {
            ensure!(
                g.xs.len() == g.ys.len(),
                "scatter plot `{}`: group `{}` has {} x and {} y values",
                self.title,
                g.name,
                g.xs.len(),
                g.ys.len()
            );
        }
        let (x0, x1) = padded_range(self.groups.iter().flat_map(|g| g.xs.iter().copied()), 0.04);
        let (y0, y1) = padded_range(self.groups.iter().flat_map(|g| g.ys.iter().copied()), 0.06);
        render(self.size, |root| {
            let (plot, legend) = root.split_horizontally(self.size.0 - self.legend_width);
            let mut chart = Frame::new(&self.title).build(&plot, x0..x1, y0..y1)?;
            mesh(&mut chart)
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .draw()?;
            for (i, g) in self.groups.iter().enumerate() {
                let colour = palette(i);
                let pts: Vec<(f64, f64)> =
                    g.xs.iter()
                        .zip(&g.ys)
                        .map(|(&x, &y)| (x, y))
                        .filter(|p| p.0.is_finite() && p.1.is_finite())
                        .collect();
                if g.line {
                    chart.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?;
                }
                if g.markers {
                    chart.draw_series(
                        pts.into_iter()
                            .map(|p| Circle::new(p, 3, colour.mix(0.65).filled())),
                    )?;
                }
            }
            // The legend, in its own panel.
            for (i, g) in self.groups.iter().enumerate() {
                let y = 48 + 22 * i as i32;
                let colour = palette(i);
                if g.line {
                    legend.draw(&PathElement::new(
                        vec![(6, y), (24, y)],
                        colour.stroke_width(2),
                    ))?;
                }
                if g.markers {
                    legend.draw(&Circle::new((15, y), 4, colour.filled()))?;
                }
                legend.draw(&Text::new(
                    g.name.clone(),
                    (30, y - 7),
                    (FONT, 13).into_font(),
                ))?;
            }
            Ok(())
        })
    }
}
