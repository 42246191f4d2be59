//! Drawing a gridworld: ASCII for terminals, SVG for notebooks.
//!
//! [`GridView`] layers a value table (cell colours), a policy (arrows) and the agent
//! over the map. In evcxr, a `GridView` or a `GridWorld` as the last expression of a
//! cell shows itself as an `image/svg+xml` output.

use crate::color::{diverging, hex, text_on};
use crate::map::Cell;
use crate::mdp::{Action, GridWorld};
use std::fmt::Write;

/// A picture of a gridworld with optional layers.
#[derive(Debug, Clone)]
pub struct GridView {
    world: GridWorld,
    values: Option<Vec<f64>>,
    policy: Option<Vec<Action>>,
    agent: Option<usize>,
    title: Option<String>,
    cell_px: f64,
}

impl GridView {
    /// The bare map.
    pub fn new(world: &GridWorld) -> Self {
        Self {
            world: world.clone(),
            values: None,
            policy: None,
            agent: None,
            title: None,
            cell_px: 56.0,
        }
    }

    /// Colour cells by a value per state (and print the value).
    pub fn values(mut self, values: &[f64]) -> Self {
        self.values = Some(values.to_vec());
        self
    }

    /// Draw an arrow per non-terminal state.
    pub fn policy(mut self, policy: &[Action]) -> Self {
        self.policy = Some(policy.to_vec());
        self
    }

    /// Draw the agent in state `s`.
    pub fn agent(mut self, s: usize) -> Self {
        self.agent = Some(s);
        self
    }

    /// A caption above the grid.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// Side of one cell in pixels (default 56).
    pub fn cell_size(mut self, px: f64) -> Self {
        self.cell_px = px;
        self
    }

    /// The picture as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let w = &self.world;
        let m = &w.map;
        let cs = self.cell_px;
        let top = if self.title.is_some() { 28.0 } else { 4.0 };
        let title_px = self
            .title
            .as_ref()
            .map_or(0.0, |t| t.chars().count() as f64 * 7.8 + 12.0);
        let width = (m.cols as f64 * cs + 8.0).max(title_px);
        let height = m.rows as f64 * cs + top + 4.0;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">"#
        );
        let _ = write!(
            s,
            r#"<rect width="{width}" height="{height}" fill="white"/>"#
        );
        if let Some(t) = &self.title {
            let _ = write!(
                s,
                r#"<text x="{}" y="19" font-size="14" text-anchor="middle">{}</text>"#,
                width / 2.0,
                escape(t)
            );
        }
        // Symmetric colour scale over the non-terminal values.
        let scale = self.values.as_ref().map(|v| {
            (0..w.n_states())
                .filter(|&st| !w.is_terminal(st))
                .map(|st| v[st].abs())
                .fold(1e-9, f64::max)
        });
        for r in 0..m.rows {
            for c in 0..m.cols {
                let x = 4.0 + c as f64 * cs;
                let y = top + r as f64 * cs;
                let cell = m.cell(r, c);
                let state = w.state_of(r, c);
                let (fill, label): (String, Option<String>) = match cell {
                    Cell::Wall => ("#444444".into(), None),
                    Cell::Dragon => ("#7f0000".into(), Some(fmt_num(m.params.dragon_reward))),
                    Cell::Points(p) => (
                        if p >= 0.0 {
                            "#1b7837".into()
                        } else {
                            "#b2182b".into()
                        },
                        Some(fmt_num(p)),
                    ),
                    Cell::Empty | Cell::Start => match (&self.values, state, scale) {
                        (Some(v), Some(st), Some(k)) => {
                            (hex(diverging(v[st] / k)), Some(format!("{:.2}", v[st])))
                        }
                        _ => ("#f4f1e8".into(), None),
                    },
                };
                let _ = write!(
                    s,
                    r##"<rect x="{x}" y="{y}" width="{cs}" height="{cs}" fill="{fill}" stroke="#999" stroke-width="1"/>"##
                );
                let text_colour = if fill.starts_with('#') && fill.len() == 7 {
                    let p = |i: usize| u8::from_str_radix(&fill[i..i + 2], 16).unwrap_or(0);
                    text_on((p(1), p(3), p(5)))
                } else {
                    "#111"
                };
                let corner = match cell {
                    Cell::Start => Some("S"),
                    Cell::Dragon => Some("DRAGON"),
                    _ => None,
                };
                if let Some(corner) = corner {
                    let _ = write!(
                        s,
                        r#"<text x="{}" y="{}" font-size="{}" font-weight="bold" fill="{text_colour}">{corner}</text>"#,
                        x + 3.0,
                        y + cs * 0.22,
                        cs * if corner == "S" { 0.2 } else { 0.16 }
                    );
                }
                if let Some(label) = label {
                    let terminal = cell.is_terminal();
                    let (ty, size) = if terminal || self.policy.is_none() {
                        (y + cs * 0.58, if terminal { cs * 0.26 } else { cs * 0.22 })
                    } else {
                        (y + cs * 0.92, cs * 0.18)
                    };
                    let _ = write!(
                        s,
                        r#"<text x="{}" y="{ty}" font-size="{size}" text-anchor="middle" fill="{text_colour}">{}</text>"#,
                        x + cs / 2.0,
                        escape(&label)
                    );
                }
                if let (Some(policy), Some(st)) = (&self.policy, state) {
                    if !cell.is_terminal() {
                        s.push_str(&arrow(x + cs / 2.0, y + cs * 0.45, cs * 0.3, policy[st]));
                    }
                }
            }
        }
        if let Some(a) = self.agent {
            let (r, c) = w.cell_of(a);
            let _ = write!(
                s,
                r##"<circle cx="{}" cy="{}" r="{}" fill="#2166ac" stroke="white" stroke-width="2"/>"##,
                4.0 + (c as f64 + 0.5) * cs,
                top + (r as f64 + 0.5) * cs,
                cs * 0.18
            );
        }
        s.push_str("</svg>");
        s
    }

    /// evcxr rich output: shows the picture inline as `image/svg+xml`.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.to_svg()
        );
    }
}

fn arrow(cx: f64, cy: f64, len: f64, a: Action) -> String {
    let (dy, dx) = a.delta();
    let (dx, dy) = (dx as f64, dy as f64);
    let (x0, y0) = (cx - dx * len / 2.0, cy - dy * len / 2.0);
    let (x1, y1) = (cx + dx * len / 2.0, cy + dy * len / 2.0);
    let head = len * 0.4;
    // Two barbs at ±35° from the shaft.
    let (px, py) = (-dy, dx);
    let bx = x1 - dx * head;
    let by = y1 - dy * head;
    let w = head * 0.6;
    format!(
        r##"<line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="#111" stroke-width="2.2"/><polygon points="{x1:.1},{y1:.1} {:.1},{:.1} {:.1},{:.1}" fill="#111"/>"##,
        bx + px * w,
        by + py * w,
        bx - px * w,
        by - py * w
    )
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:+.0}")
    } else {
        format!("{x:+}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The map as text: `#` walls, `S` start, `D` dragon, points, and an arrow per
/// state when a policy is given.
pub fn ascii(world: &GridWorld, policy: Option<&[Action]>) -> String {
    let m = &world.map;
    let mut out = String::new();
    for r in 0..m.rows {
        for c in 0..m.cols {
            let token = match m.cell(r, c) {
                Cell::Wall => "#".to_string(),
                Cell::Dragon => "D".to_string(),
                Cell::Points(p) => fmt_num(p),
                cell => match (policy, world.state_of(r, c)) {
                    (Some(p), Some(s)) => p[s].arrow().to_string(),
                    _ if cell == Cell::Start => "S".to_string(),
                    _ => ".".to_string(),
                },
            };
            let _ = write!(out, "{token:>4}");
        }
        out.push('\n');
    }
    out
}

/// A value table as text, one number per cell (`#` for walls).
pub fn ascii_values(world: &GridWorld, values: &[f64]) -> String {
    let m = &world.map;
    let mut out = String::new();
    for r in 0..m.rows {
        for c in 0..m.cols {
            match world.state_of(r, c) {
                None => out.push_str("      #"),
                Some(s) if world.is_terminal(s) => {
                    let _ = write!(out, "{:>7}", format!("[{}]", fmt_num(m.entry_reward(r, c))));
                }
                Some(s) => {
                    let _ = write!(out, "{:>7.3}", values[s]);
                }
            }
        }
        out.push('\n');
    }
    out
}

impl std::fmt::Display for GridWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&ascii(self, None))
    }
}

impl GridWorld {
    /// evcxr rich output: a `GridWorld` draws its map.
    pub fn evcxr_display(&self) {
        GridView::new(self)
            .agent(self.start_state())
            .evcxr_display()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_and_ascii_show_every_layer() {
        let w = GridWorld::load("dragon").unwrap();
        let values: Vec<f64> = (0..w.n_states()).map(|s| s as f64 - 10.0).collect();
        let policy = vec![Action::Right; w.n_states()];
        let svg = GridView::new(&w)
            .values(&values)
            .policy(&policy)
            .agent(0)
            .title("t<1>")
            .to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("+10") && svg.contains("<polygon") && svg.contains("<circle"));
        assert!(svg.contains("t&lt;1&gt;"));
        let text = ascii(&w, Some(&policy));
        assert_eq!(text.lines().count(), 6);
        assert!(text.contains('→') && text.contains('D') && text.contains("+10"));
    }
}
