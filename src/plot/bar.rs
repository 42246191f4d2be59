use super::frame::{mesh, render, Frame};
use super::legend::LegendEntry;
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
    y_axis: YAxis,
}

/// How a bar chart's y axis is ranged.
#[derive(Debug, Clone, Copy, PartialEq)]
enum YAxis {
    /// From zero (or below, for negative bars) to the tallest bar.
    FromZero,
    /// Fitted to the bar tops and error bars, zero or not.
    Fit,
    /// Given by the caller.
    Fixed(f64, f64),
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
            y_axis: YAxis::FromZero,
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
    /// series' colour, all on one axis; the legend sits below the chart.
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

    /// Fit the y axis to the data instead of starting it at zero, so that
    /// close values (Kendall τ of 0.82 against 0.86) differ visibly. Bars
    /// then rise from the bottom of the axis: compare their tops, not their
    /// lengths.
    pub fn fit_y(mut self, on: bool) -> Self {
        self.y_axis = if on { YAxis::Fit } else { YAxis::FromZero };
        self
    }

    /// Fix the y axis to `[lo, hi]`, e.g. to give side-by-side panels one
    /// scale (see [`BarChart::y_extent`]).
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y_axis = YAxis::Fixed(lo, hi);
        self
    }

    /// The y range the chart draws: the one given to [`BarChart::y_range`],
    /// else the bars and error bars, padded (and from zero unless
    /// [`BarChart::fit_y`]). The union of two charts' extents gives both
    /// one scale.
    pub fn y_extent(&self) -> (f64, f64) {
        let zero = match self.y_axis {
            YAxis::Fixed(lo, hi) => return (lo, hi),
            YAxis::Fit => None,
            YAxis::FromZero => Some(0.0),
        };
        let grouped = self.groups.iter().flat_map(|g| g.1.iter().copied());
        let singles = self
            .values
            .iter()
            .enumerate()
            .filter(|_| self.groups.is_empty());
        let tops = singles
            .flat_map(|(i, &v)| {
                let (lo, hi) = self.errors.as_ref().map(|e| e[i]).unwrap_or((0.0, 0.0));
                [v - lo, v + hi]
            })
            .chain(grouped)
            .chain(zero);
        padded_range(tops, 0.08)
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
        let (y0, y1) = self.y_extent();
        // Bars rise from zero, or from the axis edge when zero is off the axis.
        let base = 0f64.clamp(y0, y1);
        let legend: Vec<LegendEntry> = self
            .groups
            .iter()
            .enumerate()
            .map(|(j, (name, _))| LegendEntry::fill(name, palette(j)))
            .collect();
        render(self.size, |root| {
            let frame = Frame {
                legend: &legend,
                ..Frame::new(&self.title)
            };
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
                        [(i as f64 + 0.15, base), (i as f64 + 0.85, v)],
                        palette(i).filled(),
                    )
                }))?;
            } else {
                let k = self.groups.len() as f64;
                let w = 0.7 / k;
                for (j, (_, values)) in self.groups.iter().enumerate() {
                    chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
                        let x = i as f64 + 0.15 + j as f64 * w;
                        Rectangle::new([(x, base), (x + w * 0.92, v)], palette(j).filled())
                    }))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn taus() -> BarChart {
        BarChart::new("tau").grouped(
            &["none", "flip"],
            &[("Elo", &[0.84, 0.80][..]), ("BT", &[0.86, 0.83][..])],
        )
    }

    #[test]
    fn bars_start_at_zero_unless_fitted() {
        let (lo, hi) = taus().y_extent();
        assert!(lo <= 0.0 && hi > 0.86, "{lo}..{hi}");
        let (lo, hi) = taus().fit_y(true).y_extent();
        // Fitted: the 0.06 spread of the data fills most of the axis.
        assert!(lo > 0.7 && lo < 0.80 && hi > 0.86 && hi < 0.9, "{lo}..{hi}");
        assert_eq!(taus().y_range(0.5, 1.0).y_extent(), (0.5, 1.0));
    }

    #[test]
    fn extent_covers_error_bars() {
        let c = BarChart::new("e")
            .bars(&["a", "b"], &[1.0, 2.0])
            .intervals(&[0.5, 1.5], &[1.2, 3.0])
            .fit_y(true);
        let (lo, hi) = c.y_extent();
        assert!(lo < 0.5 && hi > 3.0, "{lo}..{hi}");
        assert!(c.draw().is_ok());
    }
}
