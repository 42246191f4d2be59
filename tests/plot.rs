//! Every chart type draws, shows as SVG and renders to a non-blank PNG.

use rlhf_lab::gridworld::GridWorld;
use rlhf_lab::gridworld_plots::ValueTable;
use rlhf_lab::plot::{BarChart, Figure, Heatmap, Histogram, LineChart};

/// Fraction of pixels that are not white.
fn ink(png: &[u8]) -> f64 {
    let img = resvg::tiny_skia::Pixmap::decode_png(png).unwrap();
    let px = img.pixels();
    px.iter()
        .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
        .count() as f64
        / px.len() as f64
}

fn check(fig: &Figure) {
    assert!(fig.svg().contains("<svg"));
    let png = fig.to_png().unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let k = ink(&png);
    assert!(k > 0.01 && k < 0.95, "ink {k}");
}

#[test]
fn all_chart_types_render() {
    let xs: Vec<f64> = (0..50).map(|i| i as f64).collect();
    let ys: Vec<f64> = xs.iter().map(|x| (x / 5.0).sin() + 0.1 * x).collect();
    let lo: Vec<f64> = ys.iter().map(|y| y - 0.3).collect();
    let hi: Vec<f64> = ys.iter().map(|y| y + 0.3).collect();
    check(
        &LineChart::new("lines")
            .series("a", &xs, &ys)
            .series_with_band("b", &xs, &xs, &lo, &hi)
            .hline("ref", 2.0)
            .smoothing(0.8)
            .draw()
            .unwrap(),
    );
    let pos: Vec<f64> = xs.iter().map(|x| (x + 1.0).powi(2)).collect();
    check(
        &LineChart::new("log")
            .log_y(true)
            .series("sq", &xs, &pos)
            .draw()
            .unwrap(),
    );
    check(
        &Heatmap::new("h", vec![vec![1.0, 2.0, f64::NAN], vec![-1.0, 0.0, 3.0]])
            .row_labels(vec!["r0".into(), "r1".into()])
            .col_labels(vec!["a".into(), "b".into(), "c".into()])
            .annotate(true)
            .draw()
            .unwrap(),
    );
    check(
        &BarChart::new("bars")
            .bars(&["x", "y", "z"], &[1.0, 3.0, 2.0])
            .errors(&[0.1, 0.5, 0.2])
            .draw()
            .unwrap(),
    );
    check(
        &Histogram::new("hist")
            .data("a", &ys)
            .data("b", &xs)
            .bins(10)
            .draw()
            .unwrap(),
    );
    let w = GridWorld::load("dragon").unwrap();
    let v: Vec<f64> = (0..w.n_states()).map(|s| s as f64).collect();
    let grid = Figure::grid(
        &[
            ValueTable::new(&w, &v, "values").figure().unwrap(),
            Figure::from(rlhf_lab::gridworld::GridView::new(&w)),
        ],
        2,
    );
    check(&grid);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    assert!(Heatmap::new("ragged", vec![vec![1.0], vec![1.0, 2.0]])
        .draw()
        .is_err());
    assert!(BarChart::new("b").bars(&["a"], &[1.0, 2.0]).draw().is_err());
    assert!(Histogram::new("h").data("nan", &[f64::NAN]).draw().is_err());
}

#[test]
fn histogram_density_integrates_to_one() {
    let data: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin()).collect();
    let h = Histogram::new("d").data("s", &data).bins(20).density(true);
    let (edges, counts) = h.counts();
    let area: f64 = counts[0]
        .iter()
        .zip(edges.windows(2))
        .map(|(c, e)| c * (e[1] - e[0]))
        .sum();
    assert!((area - 1.0).abs() < 1e-9);
}
