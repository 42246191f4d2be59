use super::frame::{mesh, render, Frame};
use super::legend::LegendEntry;
use super::ticks::draw_log_y_ticks;
use super::{padded_range, palette, Figure};
use anyhow::Result;
use plotters::prelude::*;

/// Colour of the dashed reference lines ([`LineChart::hline`]).
const HLINE: RGBColor = RGBColor(60, 60, 60);

/// Exponential moving average, as TensorBoard smooths curves:
/// `s_t = α · s_{t−1} + (1 − α) · x_t`, debiased by `1 − α^t` (Kingma & Ba 2015).
pub fn ema_smooth(values: &[f64], alpha: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    let mut s = 0.0;
    let mut weight = 0.0;
    for &x in values {
        if !x.is_finite() {
            out.push(f64::NAN);
            continue;
        }
        s = alpha * s + (1.0 - alpha) * x;
        weight = alpha * weight + (1.0 - alpha);
        out.push(s / weight);
    }
    out
}

#[derive(Debug, Clone)]
struct Series {
    name: String,
    xs: Vec<f64>,
    ys: Vec<f64>,
    band: Option<(Vec<f64>, Vec<f64>)>,
    dashed: bool,
}

/// Line chart: several named series, optional smoothing, log y axis, shaded bands.
#[derive(Debug, Clone)]
pub struct LineChart {
    title: String,
    x_label: String,
    y_label: String,
    series: Vec<Series>,
    log_y: bool,
    smoothing: f64,
    size: (u32, u32),
    hlines: Vec<(String, f64)>,
}

impl LineChart {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            series: Vec::new(),
            log_y: false,
            smoothing: 0.0,
            size: (640, 400),
            hlines: Vec::new(),
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

    /// Add a series of points `(xs[i], ys[i])`.
    pub fn series(mut self, name: impl Into<String>, xs: &[f64], ys: &[f64]) -> Self {
        self.series.push(Series {
            name: name.into(),
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            band: None,
            dashed: false,
        });
        self
    }

    /// Add a series with a shaded band `[lo, hi]` around it (e.g. mean ± std over seeds).
    pub fn series_with_band(
        mut self,
        name: impl Into<String>,
        xs: &[f64],
        ys: &[f64],
        lo: &[f64],
        hi: &[f64],
    ) -> Self {
        self.series.push(Series {
            name: name.into(),
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            band: Some((lo.to_vec(), hi.to_vec())),
            dashed: false,
        });
        self
    }

    /// A horizontal reference line (e.g. the optimal return).
    pub fn hline(mut self, name: impl Into<String>, y: f64) -> Self {
        self.hlines.push((name.into(), y));
        self
    }

    /// Logarithmic y axis (non-positive values are dropped), with ticks at
    /// decades or 1-2-5 labelled as plain numbers (20, 6, 0.6).
    pub fn log_y(mut self, on: bool) -> Self {
        self.log_y = on;
        self
    }

    /// EMA smoothing factor α in [0, 1): the raw curve is drawn faintly underneath.
    pub fn smoothing(mut self, alpha: f64) -> Self {
        self.smoothing = alpha.clamp(0.0, 0.999);
        self
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// One entry per series and reference line, or none for a lone series.
    fn legend(&self) -> Vec<LegendEntry> {
        if self.series.len() + self.hlines.len() <= 1 && self.hlines.is_empty() {
            return Vec::new();
        }
        let series = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry::line(&s.name, palette(i), 2, s.dashed));
        let hlines = self
            .hlines
            .iter()
            .enumerate()
            .map(|(j, (name, _))| LegendEntry::line(name, HLINE, 1 + j as u32 % 2, true));
        series.chain(hlines).collect()
    }

    pub fn draw(&self) -> Result<Figure> {
        let tf = |y: f64| {
            if self.log_y {
                if y > 0.0 {
                    y.log10()
                } else {
                    f64::NAN
                }
            } else {
                y
            }
        };
        let (x0, x1) = padded_range(self.series.iter().flat_map(|s| s.xs.iter().copied()), 0.0);
        let ys = self
            .series
            .iter()
            .flat_map(|s| {
                let band = s
                    .band
                    .iter()
                    .flat_map(|(l, h)| l.iter().chain(h.iter()).copied());
                s.ys.iter().copied().chain(band).collect::<Vec<_>>()
            })
            .chain(self.hlines.iter().map(|h| h.1))
            .map(tf);
        let (y0, y1) = padded_range(ys, 0.05);
        let legend = self.legend();
        render(self.size, |root| {
            let frame = Frame {
                legend: &legend,
                ..Frame::new(&self.title)
            };
            let mut chart = frame.build(root, x0..x1, y0..y1)?;
            let mut m = mesh(&mut chart);
            m.x_desc(&self.x_label).y_desc(&self.y_label);
            if self.log_y {
                m.y_labels(0);
            }
            m.draw()?;
            if self.log_y {
                draw_log_y_ticks(root, &mut chart, (x0, x1), (y0, y1))?;
            }
            for (i, s) in self.series.iter().enumerate() {
                let colour = palette(i);
                if let Some((lo, hi)) = &s.band {
                    let mut poly: Vec<(f64, f64)> =
                        s.xs.iter().zip(lo).map(|(&x, &y)| (x, tf(y))).collect();
                    poly.extend(s.xs.iter().zip(hi).rev().map(|(&x, &y)| (x, tf(y))));
                    poly.retain(|p| p.1.is_finite());
                    chart.draw_series(std::iter::once(Polygon::new(
                        poly,
                        colour.mix(0.18).filled(),
                    )))?;
                }
                let raw: Vec<(f64, f64)> =
                    s.xs.iter()
                        .zip(&s.ys)
                        .map(|(&x, &y)| (x, tf(y)))
                        .filter(|p| p.1.is_finite())
                        .collect();
                let main: Vec<(f64, f64)> = if self.smoothing > 0.0 {
                    chart.draw_series(LineSeries::new(
                        raw.clone(),
                        colour.mix(0.25).stroke_width(1),
                    ))?;
                    let ys: Vec<f64> = raw.iter().map(|p| p.1).collect();
                    raw.iter()
                        .zip(ema_smooth(&ys, self.smoothing))
                        .map(|(p, y)| (p.0, y))
                        .collect()
                } else {
                    raw
                };
                let style = colour.stroke_width(2);
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(main, 6, 4, style))?;
                } else {
                    chart.draw_series(LineSeries::new(main, style))?;
                }
            }
            for (j, (_, y)) in self.hlines.iter().enumerate() {
                let y = tf(*y);
                let style = HLINE.stroke_width(1 + j as u32 % 2);
                chart.draw_series(DashedLineSeries::new(vec![(x0, y), (x1, y)], 5, 4, style))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The y pixel of the `<text>` element that reads `label`.
    fn text_y(svg: &str, label: &str) -> f64 {
        let at = svg
            .find(&format!(">\n{label}\n</text>"))
            .expect("label drawn");
        let tag = &svg[svg[..at].rfind("<text").unwrap()..at];
        let y = &tag[tag.find(" y=\"").unwrap() + 4..];
        y[..y.find('"').unwrap()].parse().unwrap()
    }

    /// A loss curve ends in the lower right, where the legend used to sit:
    /// the legend's names now lie below every point of every line.
    #[test]
    fn legend_lies_below_the_curves() {
        let xs: Vec<f64> = (0..100).map(f64::from).collect();
        let train: Vec<f64> = xs.iter().map(|x| 5.0 * (-x / 10.0).exp()).collect();
        let held: Vec<f64> = xs.iter().map(|x| 5.2 * (-x / 12.0).exp()).collect();
        for log in [false, true] {
            let svg = LineChart::new("loss")
                .series("training batch", &xs, &train)
                .series("held-out", &xs, &held)
                .log_y(log)
                .draw()
                .unwrap()
                .svg()
                .to_string();
            let lowest_point = svg
                .split("points=\"")
                .skip(1)
                .map(|p| {
                    p[..p.find('"').unwrap()]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                })
                // The curves, not the two-point legend swatches and grid lines.
                .filter(|pts| pts.len() > 10)
                .flatten()
                .map(|xy| xy.split(',').nth(1).unwrap().parse::<f64>().unwrap())
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(lowest_point > 200.0, "curves drawn: {lowest_point}");
            for label in ["training batch", "held-out"] {
                let y = text_y(&svg, label);
                assert!(
                    y > lowest_point + 5.0,
                    "{label} at y {y}, a point at {lowest_point}"
                );
            }
        }
    }

    #[test]
    fn ema_debiased() {
        let s = ema_smooth(&[1.0, 1.0, 1.0], 0.9);
        assert!(s.iter().all(|v| (v - 1.0).abs() < 1e-12));
        let s = ema_smooth(&[0.0, 10.0], 0.5);
        // s1 = 0, s2 = 0.5*0 + 0.5*10 = 5, weight = 0.75
        assert!((s[1] - 5.0 / 0.75).abs() < 1e-12);
    }
}
