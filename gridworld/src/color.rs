//! Colour maps shared by the gridworld renderer and the plot module.

/// An sRGB colour.
pub type Rgb = (u8, u8, u8);

fn lerp_stops(stops: &[Rgb], t: f64) -> Rgb {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Viridis (the matplotlib default), sampled at 9 stops, for t in [0, 1].
pub fn viridis(t: f64) -> Rgb {
    const STOPS: [Rgb; 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    lerp_stops(&STOPS, t)
}

/// Red–white–green diverging map for t in [-1, 1] (negative red, positive green).
pub fn diverging(t: f64) -> Rgb {
    const STOPS: [Rgb; 5] = [
        (178, 24, 43),
        (239, 138, 98),
        (247, 247, 247),
        (127, 191, 123),
        (27, 120, 55),
    ];
    lerp_stops(&STOPS, (t + 1.0) / 2.0)
}

/// `#rrggbb`.
pub fn hex(c: Rgb) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

/// Black or white text, whichever reads better on `bg`.
pub fn text_on(bg: Rgb) -> &'static str {
    let luma = 0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64;
    if luma > 140.0 {
        "#111"
    } else {
        "#fff"
    }
}
