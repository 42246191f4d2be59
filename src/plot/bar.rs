use super::line::format_tick;
use super::{padded_range, palette, Figure, FONT};
use anyhow::{ensure, Result};
use plotters::prelude::*;

/// Bars with labels and optional symmetric or asymmetric error bars.
#[derive(Debug, Clone)]
pub struct BarChart {
    title: String,
    y_label: String,
    labels: Vec<String>,
    values: Vec<f64>,
    errors: Option<Vec<(f64, f64)>>,
    size: (u32, u32),
}

impl BarChart {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            y_label: String::new(),
            labels: Vec::new(),
            values: Vec::new(),
            errors: None,
            size: (640, 400),
        }
    }

    pub fn y_label(mut self, s: impl Into<String>) -> Self {
        self.y_label = s.into();
        self
    }

    /// One bar per label.
    pub fn bars(mut self, labels: &[impl ToString], values: &[f64]) -> Self {
        self.labels = labels.iter().map(|l| l.to_string()).collect();
        self.values = values.to_vec();
        self
    }

    /// Symmetric error bars: value ± err.
    pub fn errors(mut self, err: &[f64]) -> Self {
        self.errors = Some(err.iter().map(|&e| (e, e)).collect());
        self
    }

    /// Error bars from an interval `[lo, hi]` per bar (e.g. bootstrap percentiles).
    pub fn intervals(mut self, lo: &[f64], hi: &[f64]) -> Self {
        self.errors = Some(
            self.values
                .iter()
                .zip(lo.iter().zip(hi))
                .map(|(&v, (&l, &h))| (v - l, h - v))
                .collect(),
        );
        self
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    pub fn draw(&self) -> Result<Figure> {
        let n = self.values.len();
        ensure!(
            n == self.labels.len() && n > 0,
            "bar chart `{}`: give one value per label",
            self.title
        );
        if let Some(e) = &self.errors {
            ensure!(
                e.len() == n,
                "bar chart `{}`: give one error per bar",
                self.title
            );
        }
        let tops = self.values.iter().enumerate().flat_map(|(i, &v)| {
            let (lo, hi) = self.errors.as_ref().map(|e| e[i]).unwrap_or((0.0, 0.0));
            [v - lo, v + hi, 0.0]
        });
        let (y0, y1) = padded_range(tops, 0.08);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, self.size).into_drawing_area();
            root.fill(&WHITE)?;
            let label_h = 40;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, (FONT, 18))
                .margin(12)
                .x_label_area_size(label_h)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..n as f64, y0..y1)?;
            let labels = self.labels.clone();
            let x_fmt = move |v: &f64| {
                let i = (*v - 0.5).round();
                if (v - 0.5 - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                labels.get(i as usize).cloned().unwrap_or_default()
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(2 * n + 1)
                .x_label_formatter(&x_fmt)
                .x_label_style((FONT, 12).into_text_style(&root))
                .y_desc(&self.y_label)
                .y_label_formatter(&|v| format_tick(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()?;
            chart.draw_series(self.values.iter().enumerate().map(|(i, &v)| {
                Rectangle::new(
                    [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, v)],
                    palette(i).filled(),
                )
            }))?;
            if let Some(errs) = &self.errors {
                chart.draw_series(self.values.iter().zip(errs).enumerate().map(
                    |(i, (&v, &(lo, hi)))| {
                        ErrorBar::new_vertical(
                            i as f64 + 0.5,
                            v - lo,
                            v,
                            v + hi,
                            BLACK.stroke_width(2),
                            10,
                        )
                    },
                ))?;
            }
            root.present()?;
        }
        Ok(Figure::from_svg(svg, self.size.0, self.size.1))
    }
}
