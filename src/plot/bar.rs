use super::frame::{mesh, render, Frame};
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
    /// Grouped bars: one named series per colour, one value per label each.
    groups: Vec<(String, Vec<f64>)>,
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
            groups: Vec::new(),
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

    /// Grouped bars: at each label, one bar per series side by side, in the
    /// series' colour, all on one axis; the legend sits below the labels.
    pub fn grouped(mut self, labels: &[impl ToString], series: &[(&str, &[f64])]) -> Self {
        self.labels = labels.iter().map(|l| l.to_string()).collect();
        self.groups = series
            .iter()
            .map(|(name, v)| (name.to_string(), v.to_vec()))
            .collect();
        self.values = vec![0.0; self.labels.len()];
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
        for (name, v) in &self.groups {
            ensure!(
                v.len() == n,
                "bar chart `{}`: series `{name}` needs one value per label",
                self.title
            );
        }
        let grouped: Vec<f64> = self
            .groups
            .iter()
            .flat_map(|g| g.1.iter().copied())
            .collect();
        let tops = self
            .values
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| {
                let (lo, hi) = self.errors.as_ref().map(|e| e[i]).unwrap_or((0.0, 0.0));
                [v - lo, v + hi, 0.0]
            })
            .chain(grouped);
        let (y0, y1) = padded_range(tops, 0.08);
        render(self.size, |root| {
            let mut frame = Frame::new(&self.title);
            if !self.groups.is_empty() {
                frame.x_label_area += 26; // a row below the labels for the legend
            }
            let mut chart = frame.build(root, 0f64..n as f64, y0..y1)?;
            let labels = self.labels.clone();
            let x_fmt = move |v: &f64| {
                let i = (*v - 0.5).round();
                if (v - 0.5 - i).abs() > 1e-6 || i < 0.0 {
                    return String::new();
                }
                labels.get(i as usize).cloned().unwrap_or_default()
            };
            mesh(&mut chart)
                .disable_x_mesh()
                .x_labels(2 * n + 1)
                .x_label_formatter(&x_fmt)
                .x_label_style((FONT, 12).into_text_style(root))
                .y_desc(&self.y_label)
                .draw()?;
            if self.groups.is_empty() {
                chart.draw_series(self.values.iter().enumerate().map(|(i, &v)| {
                    Rectangle::new(
                        [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, v)],
                        palette(i).filled(),
                    )
                }))?;
            } else {
                let k = self.groups.len() as f64;
                let w = 0.7 / k;
                for (j, (_, values)) in self.groups.iter().enumerate() {
                    chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
                        let x = i as f64 + 0.15 + j as f64 * w;
                        Rectangle::new([(x, 0.0), (x + w * 0.92, v)], palette(j).filled())
                    }))?;
                }
                // The legend, in a row below the labels.
                let y = self.size.1 as i32 - 24;
                let mut x = 80;
                for (j, (name, _)) in self.groups.iter().enumerate() {
                    root.draw(&Rectangle::new(
                        [(x, y), (x + 14, y + 12)],
                        palette(j).filled(),
                    ))?;
                    root.draw(&Text::new(
                        name.clone(),
                        (x + 20, y - 1),
                        (FONT, 13).into_font(),
                    ))?;
                    x += 34 + 8 * name.chars().count() as i32;
                }
            }
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
            Ok(())
        })
    }
}
