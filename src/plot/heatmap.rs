use super::frame::{format_tick, render, Frame};
use super::{padded_range, Figure, FONT};
use anyhow::{ensure, Result};
use gridworld::color::{diverging, viridis};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A matrix drawn as coloured cells with a colour bar; row 0 at the top.
/// Marked cells ([`Heatmap::mark_cell`]) have their own colour and text.
#[derive(Debug, Clone)]
pub struct Heatmap {
    title: String,
    values: Vec<Vec<f64>>,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    x_label: String,
    y_label: String,
    range: Option<(f64, f64)>,
    diverging: bool,
    annotate: bool,
    size: (u32, u32),
    /// Cells drawn in their own colour with their own text, off the scale.
    marked: Vec<MarkedCell>,
}

/// A cell drawn apart from the colour scale (e.g. a terminal cell of a
/// gridworld): its own fill and its own text.
#[derive(Debug, Clone, PartialEq)]
struct MarkedCell {
    row: usize,
    col: usize,
    fill: RGBColor,
    text: String,
}

impl Heatmap {
    /// `values[row][col]`; NaN cells are drawn grey (e.g. walls).
    pub fn new(title: impl Into<String>, values: Vec<Vec<f64>>) -> Self {
        Self {
            title: title.into(),
            values,
            row_labels: Vec::new(),
            col_labels: Vec::new(),
            x_label: String::new(),
            y_label: String::new(),
            range: None,
            diverging: false,
            annotate: false,
            size: (560, 460),
            marked: Vec::new(),
        }
    }

    /// From an ndarray matrix.
    pub fn from_array(title: impl Into<String>, a: &ndarray::Array2<f64>) -> Self {
        Self::new(title, a.rows().into_iter().map(|r| r.to_vec()).collect())
    }

    pub fn row_labels(mut self, labels: Vec<String>) -> Self {
        self.row_labels = labels;
        self
    }

    pub fn col_labels(mut self, labels: Vec<String>) -> Self {
        self.col_labels = labels;
        self
    }

    pub fn x_label(mut self, s: impl Into<String>) -> Self {
        self.x_label = s.into();
        self
    }

    pub fn y_label(mut self, s: impl Into<String>) -> Self {
        self.y_label = s.into();
        self
    }

    /// Fix the colour scale (to compare two heatmaps on one scale).
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }

    /// Red–white–green around zero instead of viridis.
    pub fn diverging(mut self, on: bool) -> Self {
        self.diverging = on;
        self
    }

    /// Print each cell's value.
    pub fn annotate(mut self, on: bool) -> Self {
        self.annotate = on;
        self
    }

    /// Draw cell (`row`, `col`) in `fill` with `text` in it instead of on
    /// the colour scale, and leave its value out of the scale's range (e.g.
    /// a goal's +1 and a dragon's −10 among values near 0).
    pub fn mark_cell(
        mut self,
        row: usize,
        col: usize,
        fill: RGBColor,
        text: impl Into<String>,
    ) -> Self {
        self.marked.retain(|m| (m.row, m.col) != (row, col));
        self.marked.push(MarkedCell {
            row,
            col,
            fill,
            text: text.into(),
        });
        self
    }

    fn marked(&self, row: usize, col: usize) -> Option<&MarkedCell> {
        self.marked.iter().find(|m| (m.row, m.col) == (row, col))
    }

    /// The colour scale's `[lo, hi]`: the one given to [`Heatmap::range`],
    /// else the finite values of the cells not marked (symmetric around
    /// zero when diverging).
    pub fn colour_range(&self) -> (f64, f64) {
        self.range.unwrap_or_else(|| {
            let scaled = self.values.iter().enumerate().flat_map(|(r, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |(c, _)| self.marked(r, *c).is_none())
                    .map(|(_, &v)| v)
            });
            let (l, h) = padded_range(scaled, 0.0);
            if self.diverging {
                let m = l.abs().max(h.abs());
                (-m, m)
            } else {
                (l, h)
            }
        })
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    fn colour(&self, v: f64, lo: f64, hi: f64) -> RGBColor {
        if !v.is_finite() {
            return RGBColor(90, 90, 90);
        }
        let (r, g, b) = if self.diverging {
            let m = lo.abs().max(hi.abs()).max(1e-12);
            diverging(v / m)
        } else {
            viridis((v - lo) / (hi - lo).max(1e-12))
        };
        RGBColor(r, g, b)
    }

    pub fn draw(&self) -> Result<Figure> {
        let rows = self.values.len();
        ensure!(rows > 0, "heatmap `{}` has no rows", self.title);
        let cols = self.values[0].len();
        ensure!(
            self.values.iter().all(|r| r.len() == cols) && cols > 0,
            "heatmap `{}`: every row needs the same, non-zero number of columns",
            self.title
        );
        let (lo, hi) = self.colour_range();
        render(self.size, |root| {
            let (main, bar) = root.split_horizontally(self.size.0 as i32 - 100);
            let label_w = if self.row_labels.is_empty() {
                40
            } else {
                (self
                    .row_labels
                    .iter()
                    .map(|l| l.chars().count())
                    .max()
                    .unwrap_or(1)
                    * 7
                    + 30)
                    .min(200) as u32
            };
            // Column labels lie flat when they fit their column, else stand up
            // in a label area tall enough for the longest (plus the axis title).
            let longest = self
                .col_labels
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0) as u32;
            let col_w = (self.size.0.saturating_sub(100 + label_w + 20)) / cols as u32;
            let rotate = !self.col_labels.is_empty() && longest * 7 + 6 > col_w;
            let x_area = match (self.col_labels.is_empty(), rotate) {
                (true, _) => 36,
                (false, false) => 44,
                // 6 px gap, 7 px a character (generous for 11 px text), and
                // 40 px for the axis title below the standing labels.
                (false, true) => (longest * 7 + 6 + 40).min(300),
            };
            // A smaller title and margin than the house frame: the colour bar
            // takes the right of the canvas.
            let frame = Frame {
                title_size: 17,
                margin: 10,
                x_label_area: x_area,
                y_label_area: label_w,
                ..Frame::new(&self.title)
            };
            let mut chart = frame.build(&main, 0f64..cols as f64, 0f64..rows as f64)?;
            let col_labels = self.col_labels.clone();
            let row_labels = self.row_labels.clone();
            let x_fmt = move |v: &f64| {
                let i = (*v - 0.5).round();
                if rotate || (v - 0.5 - i).abs() > 1e-6 || i < 0.0 {
                    // Standing labels are drawn below by hand (plotters
                    // mis-anchors rotated tick labels).
                    return String::new();
                }
                col_labels
                    .get(i as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("{}", i as usize))
            };
            let y_fmt = move |v: &f64| {
                let i = (*v - 0.5).round();
                if (v - 0.5 - i).abs() > 1e-6 || i < 0.0 || i as usize >= rows {
                    return String::new();
                }
                let r = rows - 1 - i as usize;
                row_labels.get(r).cloned().unwrap_or_else(|| format!("{r}"))
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .x_labels(cols.min(40) * 2 + 1)
                .y_labels(rows.min(40) * 2 + 1)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt)
                .x_label_style((FONT, 12).into_text_style(&main))
                .draw()?;
            if rotate {
                // Each label reads downwards from just below its column's centre.
                for (c, label) in self.col_labels.iter().enumerate() {
                    let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
                    let style = (FONT, 11)
                        .into_font()
                        .transform(FontTransform::Rotate90)
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center));
                    main.draw(&Text::new(label.clone(), (x, y + 6), style))?;
                }
            }
            chart.draw_series((0..rows).flat_map(|r| {
                (0..cols).map(move |c| {
                    let y = (rows - 1 - r) as f64;
                    let fill = match self.marked(r, c) {
                        Some(m) => m.fill,
                        None => self.colour(self.values[r][c], lo, hi),
                    };
                    Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], fill.filled())
                })
            }))?;
            for r in 0..rows {
                for c in 0..cols {
                    let v = self.values[r][c];
                    let (bg, text) = match self.marked(r, c) {
                        Some(m) => (m.fill, m.text.clone()),
                        None if self.annotate && rows * cols <= 400 && v.is_finite() => (
                            self.colour(v, lo, hi),
                            format_tick((v * 100.0).round() / 100.0),
                        ),
                        None => continue,
                    };
                    let fg = if gridworld::color::text_on((bg.0, bg.1, bg.2)) == "#fff" {
                        WHITE
                    } else {
                        BLACK
                    };
                    let style = (FONT, 11)
                        .into_font()
                        .color(&fg)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    chart.draw_series(std::iter::once(Text::new(
                        text,
                        (c as f64 + 0.5, (rows - 1 - r) as f64 + 0.5),
                        style,
                    )))?;
                }
            }
            // Colour bar.
            let mut cb = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(x_area + 10)
                .margin_left(4)
                .set_label_area_size(LabelAreaPosition::Right, 62)
                .build_cartesian_2d(0f64..1f64, lo..hi)?;
            cb.configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(6)
                .y_label_style((FONT, 12))
                .y_label_formatter(&|v| format_tick(*v))
                .draw()?;
            let steps = 64;
            cb.draw_series((0..steps).map(|i| {
                let a = lo + (hi - lo) * i as f64 / steps as f64;
                let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
                Rectangle::new(
                    [(0.0, a), (1.0, b)],
                    self.colour((a + b) / 2.0, lo, hi).filled(),
                )
            }))?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_cells_stay_off_the_colour_scale() {
        let values = vec![vec![0.2, 0.6, 1.0], vec![-10.0, 0.4, f64::NAN]];
        let plain = Heatmap::new("v", values.clone());
        assert_eq!(plain.colour_range(), (-10.0, 1.0));
        let marked = Heatmap::new("v", values)
            .mark_cell(0, 2, RGBColor(44, 160, 44), "+1")
            .mark_cell(1, 0, RGBColor(214, 39, 40), "-10");
        assert_eq!(marked.colour_range(), (0.2, 0.6));
        let svg = marked.draw().unwrap();
        // plotters writes a text element's content followed by a newline.
        assert!(svg.svg().contains(">\n+1\n</text>") && svg.svg().contains(">\n-10\n</text>"));
        assert!(svg.svg().to_uppercase().contains("#2CA02C"));
    }
}
