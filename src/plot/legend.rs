//! The legend strip: one row (wrapping into more) below a chart's axis
//! labels, outside the plot area, so a legend never covers data.
//!
//! [`super::frame::Frame::build`] reserves the strip and draws it; a chart
//! only lists its [`LegendEntry`]s.

use super::FONT;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Height of one legend row, in pixels.
const ROW_H: i32 = 20;
/// Width of the swatch drawn before each name.
const SWATCH_W: i32 = 20;
/// Space between the swatch and the name, and after the name.
const GAP: i32 = 6;
const TRAILING: i32 = 18;

/// What a legend entry shows before its name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Swatch {
    /// A line segment, as the series is drawn.
    Line {
        colour: RGBColor,
        width: u32,
        dashed: bool,
    },
    /// A filled square (bars, histograms).
    Fill(RGBColor),
}

/// One named entry of a legend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LegendEntry {
    pub name: String,
    pub swatch: Swatch,
}

impl LegendEntry {
    pub fn line(name: impl Into<String>, colour: RGBColor, width: u32, dashed: bool) -> Self {
        Self {
            name: name.into(),
            swatch: Swatch::Line {
                colour,
                width,
                dashed,
            },
        }
    }

    pub fn fill(name: impl Into<String>, colour: RGBColor) -> Self {
        Self {
            name: name.into(),
            swatch: Swatch::Fill(colour),
        }
    }

    /// Width of the entry: swatch, gap, the name at 13 px (about 7.2 px a
    /// character in a sans-serif face) and the space before the next entry.
    fn width(&self) -> i32 {
        SWATCH_W + GAP + (self.name.chars().count() as f64 * 7.2).ceil() as i32 + TRAILING
    }
}

/// A pixel rectangle `[x0, x1) × [y0, y1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

/// Geometry the tests check the layout with.
#[cfg(test)]
impl Rect {
    /// Whether `(x, y)` lies inside.
    pub fn contains(&self, (x, y): (i32, i32)) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }

    /// Whether the two rectangles share any pixel.
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }
}

/// The entries laid out left to right from `left`, wrapping before `right`:
/// one rectangle per entry, relative to the top of the strip (y = 0).
pub(crate) fn layout(entries: &[LegendEntry], left: i32, right: i32) -> Vec<Rect> {
    let mut out = Vec::with_capacity(entries.len());
    let (mut x, mut y) = (left, 0);
    for e in entries {
        let w = e.width();
        if x > left && x + w > right {
            x = left;
            y += ROW_H;
        }
        out.push(Rect {
            x0: x,
            y0: y,
            x1: x + w,
            y1: y + ROW_H,
        });
        x += w;
    }
    out
}

/// Height of the strip that holds `boxes` (0 when empty), with a little air above.
pub(crate) fn strip_height(boxes: &[Rect]) -> u32 {
    boxes.iter().map(|b| b.y1 + 4).max().unwrap_or(0) as u32
}

/// Draw each entry in its box (from [`layout`], shifted down by `top`).
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[LegendEntry],
    boxes: &[Rect],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (e, b) in entries.iter().zip(boxes) {
        let mid = (b.y0 + b.y1) / 2;
        let (x, x_end) = (b.x0, b.x0 + SWATCH_W);
        match e.swatch {
            Swatch::Line {
                colour,
                width,
                dashed: false,
            } => area.draw(&PathElement::new(
                vec![(x, mid), (x_end, mid)],
                colour.stroke_width(width),
            ))?,
            Swatch::Line {
                colour,
                width,
                dashed: true,
            } => {
                for s in (x..x_end).step_by(9) {
                    area.draw(&PathElement::new(
                        vec![(s, mid), ((s + 5).min(x_end), mid)],
                        colour.stroke_width(width),
                    ))?;
                }
            }
            Swatch::Fill(colour) => area.draw(&Rectangle::new(
                [(x + 3, mid - 6), (x_end - 3, mid + 6)],
                colour.filled(),
            ))?,
        }
        let style = (FONT, 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(e.name.clone(), (x_end + GAP, mid), style))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<LegendEntry> {
        names
            .iter()
            .map(|n| LegendEntry::fill(*n, RGBColor(0, 0, 0)))
            .collect()
    }

    #[test]
    fn entries_wrap_into_rows_without_overlap() {
        let e = entries(&[
            "training batch",
            "held-out",
            "a much longer series name",
            "x",
        ]);
        let boxes = layout(&e, 70, 330);
        assert_eq!(boxes.len(), 4);
        assert!(boxes.iter().all(|b| b.x0 >= 70));
        // Every box but a lone too-wide one ends before the right edge.
        assert!(boxes.iter().all(|b| b.x1 <= 330 || b.x0 == 70));
        assert!(boxes.iter().any(|b| b.y0 > 0), "a second row: {boxes:?}");
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(!a.intersects(b), "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(strip_height(&boxes) as i32, boxes.last().unwrap().y1 + 4);
        assert_eq!(strip_height(&[]), 0);
    }
}
