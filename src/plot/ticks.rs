//! Ticks of a logarithmic axis: at decades, or 1-2-5 (or 1…9) in each
//! decade when the range is too short for three decades, labelled as plain
//! numbers ("20", "6", "0.6", never "2e1"; "10⁻⁷" for tiny decades).

use super::frame::{Canvas, Chart};
use super::FONT;
use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// `m · 10^k`, computed so that 2 · 10⁻¹ is exactly the double nearest 0.2.
fn decade_value(m: f64, k: i32) -> f64 {
    if k >= 0 {
        m * 10f64.powi(k)
    } else {
        m / 10f64.powi(-k)
    }
}

/// Tick values in `[lo, hi]` (both > 0, not logarithms): the coarsest of
/// decades, 1-2-5 or 1…9 per decade that gives at least three ticks (at
/// most about eight decades: every second or third one when more), else
/// evenly spaced 1-2-5 steps for a range shorter than a decade.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let inside = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    const SETS: [&[f64]; 3] = [
        &[1.0],
        &[1.0, 2.0, 5.0],
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
    ];
    for set in SETS {
        let ticks: Vec<f64> = (a..=b)
            .flat_map(|k| set.iter().map(move |&m| decade_value(m, k)))
            .filter(inside)
            .collect();
        if ticks.len() >= 3 {
            let every = ticks.len().div_ceil(8);
            return ticks.into_iter().step_by(every).collect();
        }
    }
    linear_ticks(lo, hi, 5)
}

/// About `n` ticks in `[lo, hi]` at multiples of a 1-2-5 step.
fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n as f64;
    let k = raw.log10().floor() as i32;
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| decade_value(m, k))
        .find(|s| *s >= raw)
        .unwrap_or(decade_value(10.0, k));
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick value as a plain number: 20 → "20", 0.6 → "0.6", 0.05 → "0.05"
/// (rounded to 12 decimals, so 0.30000000000000004 → "0.3"). Beyond
/// [1e-4, 1e6), where decimals get long, a power of ten: 1e-7 → "10⁻⁷",
/// 2e-5 → "2×10⁻⁵" (never "2e-5").
pub(crate) fn plain_number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e6).contains(&a) {
        let k = a.log10().floor() as i32;
        let m = v / decade_value(1.0, k);
        let power = format!("10{}", superscript(k));
        let m = plain_number((m * 1e6).round() / 1e6);
        return match m.as_str() {
            "1" => power,
            "-1" => format!("-{power}"),
            _ => format!("{m}×{power}"),
        };
    }
    let s = format!("{v:.12}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// `k` in superscript digits: -7 → "⁻⁷".
fn superscript(k: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let sign = if k < 0 { "⁻" } else { "" };
    let digits: String = k
        .unsigned_abs()
        .to_string()
        .bytes()
        .map(|b| DIGITS[(b - b'0') as usize])
        .collect();
    format!("{sign}{digits}")
}

/// The y axis of `chart`, whose y coordinate is log₁₀ of the value over
/// `y` (logarithms), gets [`log_ticks`]: a grid line, a tick mark and a
/// plain label at each. Configure the mesh with `.y_labels(0)` first.
pub(crate) fn draw_log_y_ticks(
    root: &Canvas<'_>,
    chart: &mut Chart<'_, '_>,
    x: (f64, f64),
    y: (f64, f64),
) -> Result<()> {
    let grid = BLACK.mix(0.2);
    let label = (FONT, 12)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Right, VPos::Center));
    for t in log_ticks(10f64.powf(y.0), 10f64.powf(y.1)) {
        let ly = t.log10();
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x.0, ly), (x.1, ly)],
            grid,
        )))?;
        let (px, py) = chart.backend_coord(&(x.0, ly));
        root.draw(&PathElement::new(vec![(px - 5, py), (px, py)], BLACK))?;
        root.draw(&Text::new(plain_number(t), (px - 8, py), label.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(lo: f64, hi: f64) -> Vec<String> {
        log_ticks(lo, hi).into_iter().map(plain_number).collect()
    }

    #[test]
    fn decades_when_the_range_spans_three() {
        assert_eq!(
            labels(0.008, 1500.0),
            ["0.01", "0.1", "1", "10", "100", "1000"]
        );
    }

    #[test]
    fn one_two_five_within_a_short_range() {
        // The range that used to read "6e-1 … 2e1".
        assert_eq!(labels(0.55, 25.0), ["1", "2", "5", "10", "20"]);
        assert_eq!(
            labels(0.15, 0.9),
            ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
        );
    }

    #[test]
    fn plain_numbers_never_in_exponent_notation() {
        for (lo, hi) in [
            (1e-5, 3e-3),
            (0.3, 0.45),
            (2.1, 3.4),
            (5.0, 5e6),
            (0.9, 1.1),
        ] {
            let l = labels(lo, hi);
            assert!(l.len() >= 2, "{lo}..{hi}: {l:?}");
            assert!(l.iter().all(|s| !s.contains('e')), "{lo}..{hi}: {l:?}");
            for t in log_ticks(lo, hi) {
                assert!(t >= lo * (1.0 - 1e-9) && t <= hi * (1.0 + 1e-9));
            }
        }
        assert_eq!(plain_number(0.1 + 0.2), "0.3");
        assert_eq!(plain_number(20.0), "20");
        assert_eq!(plain_number(0.0005), "0.0005");
        // Tiny and huge decades as powers of ten, not "1e-7".
        assert_eq!(labels(1e-7, 0.5)[0], "10⁻⁷");
        assert_eq!(plain_number(2e-5), "2×10⁻⁵");
        assert_eq!(plain_number(3e7), "3×10⁷");
    }
}
