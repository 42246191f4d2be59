use super::frame::{legend, mesh, render, Frame};
use super::{padded_range, palette, Figure};
use anyhow::{ensure, Result};
use plotters::prelude::*;

/// One or more overlaid histograms over shared bins.
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

    /// Bin counts (or densities) per sample, with the bin edges.
    pub fn counts(&self) -> (Vec<f64>, Vec<Vec<f64>>) {
        let (lo, hi) = padded_range(self.data.iter().flat_map(|d| d.1.iter().copied()), 0.0);
        let width = (hi - lo) / self.bins as f64;
        let edges: Vec<f64> = (0..=self.bins).map(|i| lo + width * i as f64).collect();
        let counts = self
            .data
            .iter()
            .map(|(_, xs)| {
                let mut c = vec![0.0; self.bins];
                let finite = xs.iter().filter(|x| x.is_finite()).count().max(1) as f64;
                for &x in xs.iter().filter(|x| x.is_finite()) {
                    let i = (((x - lo) / width) as usize).min(self.bins - 1);
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

    pub fn draw(&self) -> Result<Figure> {
        ensure!(
            self.data.iter().any(|d| d.1.iter().any(|x| x.is_finite())),
            "histogram `{}` has no finite values",
            self.title
        );
        let (edges, counts) = self.counts();
        let ymax = counts.iter().flatten().cloned().fold(0.0, f64::max) * 1.08;
        render(self.size, |root| {
            let mut chart = Frame::new(&self.title).build(
                root,
                edges[0]..edges[self.bins],
                0f64..ymax.max(1e-9),
            )?;
            mesh(&mut chart)
                .x_desc(&self.x_label)
                .y_desc(if self.density { "density" } else { "count" })
                .draw()?;
            let alpha = if self.data.len() > 1 { 0.45 } else { 0.8 };
            for (k, ((name, _), c)) in self.data.iter().zip(&counts).enumerate() {
                let colour = palette(k);
                chart
                    .draw_series(c.iter().enumerate().map(|(i, &v)| {
                        Rectangle::new(
                            [(edges[i], 0.0), (edges[i + 1], v)],
                            colour.mix(alpha).filled(),
                        )
                    }))?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                    });
            }
            if self.data.len() > 1 {
                legend(&mut chart).draw()?;
            }
            Ok(())
        })
    }
}
