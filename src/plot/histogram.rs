use super::frame::{mesh, render, Frame};
use super::legend::LegendEntry;
use super::{padded_range, palette, Figure};
use anyhow::{ensure, Result};
use plotters::prelude::*;

/// One or more histograms over shared bins. Integer data (ratings 1-10)
/// get one bin per integer; several samples of them stand side by side in
/// each bin, and several continuous samples are drawn as outlines.
#[derive(Debug, Clone)]
pub struct Histogram {
    title: String,
    x_label: String,
    data: Vec<(String, Vec<f64>)>,
    bins: usize,
    density: bool,
    size: (u32, u32),
}

impl Histogram {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            data: Vec::new(),
            bins: 30,
            density: false,
            size: (640, 400),
        }
    }

    pub fn x_label(mut self, s: impl Into<String>) -> Self {
        self.x_label = s.into();
        self
    }

    /// Add a named sample.
    pub fn data(mut self, name: impl Into<String>, values: &[f64]) -> Self {
        self.data.push((name.into(), values.to_vec()));
        self
    }

    pub fn bins(mut self, n: usize) -> Self {
        self.bins = n.max(1);
        self
    }

    /// Normalise each sample to a probability density (areas equal 1).
    pub fn density(mut self, on: bool) -> Self {
        self.density = on;
        self
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// The whole-number span `[lo, hi]` of integer data (every finite value
    /// a whole number, at most [`MAX_INTEGER_BINS`] of them): such data get
    /// one bin per integer, centred on it, whatever [`Histogram::bins`] says.
    fn integer_span(&self) -> Option<(f64, f64)> {
        let finite = || {
            self.data
                .iter()
                .flat_map(|d| d.1.iter().copied())
                .filter(|x| x.is_finite())
        };
        if finite().next().is_none() || !finite().all(|x| x.fract() == 0.0) {
            return None;
        }
        let lo = finite().fold(f64::INFINITY, f64::min);
        let hi = finite().fold(f64::NEG_INFINITY, f64::max);
        (hi - lo < MAX_INTEGER_BINS as f64).then_some((lo, hi))
    }

    /// Bin counts (or densities) per sample, with the bin edges. Integer
    /// data get one bin per integer, with edges at the half-integers.
    pub fn counts(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (lo, bins, width) = match self.integer_span() {
            Some((lo, hi)) => (lo - 0.5, (hi - lo) as usize + 1, 1.0),
            None => {
                let (lo, hi) =
                    padded_range(self.data.iter().flat_map(|d| d.1.iter().copied()), 0.0);
                (lo, self.bins, (hi - lo) / self.bins as f64)
            }
        };
        let edges: Vec<f64> = (0..=bins).map(|i| lo + width * i as f64).collect();
        let counts = self
            .data
            .iter()
            .map(|(_, xs)| {
                let mut c = vec![0.0; bins];
                let finite = xs.iter().filter(|x| x.is_finite()).count().max(1) as f64;
                for &x in xs.iter().filter(|x| x.is_finite()) {
                    let i = (((x - lo) / width) as usize).min(bins - 1);
                    c[i] += 1.0;
                }
                if self.density {
                    c.iter_mut().for_each(|v| *v /= finite * width);
                }
                c
            })
            .collect();
        (edges, counts)
    }

    /// The bars to draw, `(sample, x0, x1, height)`: for integer data, the
    /// samples side by side within each integer's bin (no bar hides or
    /// tints another); else one bar per bin, filling it.
    fn bars(&self, edges: &[f64], counts: &[Vec<f64>]) -> Vec<(usize, f64, f64, f64)> {
        let k = counts.len();
        let grouped = self.integer_span().is_some() && k > 1;
        let mut out = Vec::new();
        for (j, c) in counts.iter().enumerate() {
            for (i, &v) in c.iter().enumerate() {
                let (a, b) = (edges[i], edges[i + 1]);
                if grouped {
                    let w = 0.84 / k as f64;
                    let x = a + 0.08 + w * j as f64;
                    out.push((j, x, x + w * 0.94, v));
                } else {
                    out.push((j, a, b, v));
                }
            }
        }
        out
    }

    pub fn draw(&self) -> Result<Figure> {
        ensure!(
            self.data.iter().any(|d| d.1.iter().any(|x| x.is_finite())),
            "histogram `{}` has no finite values",
            self.title
        );
        let (edges, counts) = self.counts();
        let bins = counts[0].len();
        let ymax = counts.iter().flatten().cloned().fold(0.0, f64::max) * 1.08;
        let integer = self.integer_span().is_some();
        // Several continuous samples overlap in the same bins: they are drawn
        // as outlines, so no blended colour appears that the legend lacks.
        let outlines = !integer && self.data.len() > 1;
        let legend: Vec<LegendEntry> = if self.data.len() > 1 {
            self.data
                .iter()
                .enumerate()
                .map(|(k, (name, _))| {
                    if outlines {
                        LegendEntry::line(name, palette(k), 2, false)
                    } else {
                        LegendEntry::fill(name, palette(k))
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        render(self.size, |root| {
            let frame = Frame {
                legend: &legend,
                ..Frame::new(&self.title)
            };
            let mut chart = frame.build(root, edges[0]..edges[bins], 0f64..ymax.max(1e-9))?;
            let mut m = mesh(&mut chart);
            m.x_desc(&self.x_label)
                .y_desc(if self.density { "density" } else { "count" });
            if integer {
                // Ticks on the integers (plotters picks a 1-2-5 step).
                m.x_labels(bins.min(12) + 1);
            }
            m.draw()?;
            if outlines {
                for (k, c) in counts.iter().enumerate() {
                    let mut steps = vec![(edges[0], 0.0)];
                    for (i, &v) in c.iter().enumerate() {
                        steps.extend([(edges[i], v), (edges[i + 1], v)]);
                    }
                    steps.push((edges[bins], 0.0));
                    chart.draw_series(LineSeries::new(steps, palette(k).stroke_width(2)))?;
                }
            } else {
                chart.draw_series(self.bars(&edges, &counts).into_iter().map(
                    |(k, x0, x1, v)| {
                        Rectangle::new([(x0, 0.0), (x1, v)], palette(k).mix(0.85).filled())
                    },
                ))?;
            }
            Ok(())
        })
    }
}

/// The most integers a histogram gives one bin each (wider integer data are
/// binned like any other).
pub const MAX_INTEGER_BINS: usize = 60;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ratings_get_one_bin_centred_on_each_integer() {
        let a = [1.0, 2.0, 2.0, 7.0, 10.0];
        let b = [3.0, 3.0, 9.0];
        let h = Histogram::new("ratings")
            .data("a", &a)
            .data("b", &b)
            .bins(10);
        let (edges, counts) = h.counts();
        assert_eq!(edges.len(), 11);
        for (i, w) in edges.windows(2).enumerate() {
            assert_eq!(
                (w[0] + w[1]) / 2.0,
                (i + 1) as f64,
                "bin {i} centred on {}",
                i + 1
            );
        }
        assert_eq!(counts[0], [1., 2., 0., 0., 0., 0., 1., 0., 0., 1.]);
        assert_eq!(counts[1], [0., 0., 2., 0., 0., 0., 0., 0., 1., 0.]);
    }

    #[test]
    fn several_integer_samples_stand_side_by_side() {
        let h = Histogram::new("ratings")
            .data("a", &[1.0, 2.0, 2.0, 3.0])
            .data("b", &[1.0, 2.0, 3.0, 3.0]);
        let (edges, counts) = h.counts();
        let bars = h.bars(&edges, &counts);
        assert_eq!(bars.len(), 6);
        for (i, p) in bars.iter().enumerate() {
            // Inside its integer's bin...
            let bin = edges.windows(2).position(|w| p.1 >= w[0] && p.2 <= w[1]);
            assert!(bin.is_some(), "{p:?} crosses a bin edge");
            // ...and overlapping no other bar.
            for q in &bars[i + 1..] {
                assert!(p.2 <= q.1 || q.2 <= p.1, "{p:?} overlaps {q:?}");
            }
        }
    }

    #[test]
    fn continuous_data_keep_the_requested_bins() {
        let h = Histogram::new("x").data("a", &[0.0, 0.5, 1.0]).bins(4);
        let (edges, _) = h.counts();
        assert_eq!(edges, [0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}
