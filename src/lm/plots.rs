//! Pictures of a language model for the notebooks: coloured tokens, the
//! next-token distribution, attention maps and head patterns, training curves.

use super::behaviour::KindReport;
use super::head_patterns::{AttentionTarget, HeadPatterns};
use super::pretrained::LanguageModel;
use super::sample::{next_token_distribution, SamplingConfig};
use super::sft_data::Conversation;
use super::tokenizer::TextTokenizer;
use super::train::TrainRecord;
use crate::plot::{BarChart, Figure, Heatmap, LineChart};
use anyhow::{Context, Result};
use candle_core::{IndexOp, Tensor};

use crate::plot::escape_xml as escape;

/// Show a token piece: spaces as `·`, newlines as `⏎`, tabs as `⇥`, other
/// control characters (invalid in SVG text) as `\xNN`.
fn visible(piece: &str) -> String {
    piece
        .chars()
        .map(|c| match c {
            ' ' => "·".to_string(),
            '\n' => "⏎".to_string(),
            '\t' => "⇥".to_string(),
            c if c.is_control() => format!("\\x{:02x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Boxes of text, one per token, coloured; `highlight[i]` draws a thick
/// border (used for the SFT loss mask). Wraps at `width` pixels.
fn token_boxes(
    title: &str,
    pieces: &[(u32, String)],
    highlight: Option<&[bool]>,
    width: u32,
) -> Figure {
    let (char_w, line_h, pad) = (8.0, 34.0, 10.0);
    let mut x = pad;
    let mut y = 40.0;
    let mut body = String::new();
    for (i, (id, piece)) in pieces.iter().enumerate() {
        let label = visible(piece);
        let w = (label.chars().count().max(1) as f64) * char_w + 8.0;
        if x + w > width as f64 - pad {
            x = pad;
            y += line_h;
        }
        let c = crate::plot::palette(*id as usize);
        let (stroke, sw) = match highlight {
            Some(h) if h[i] => ("#d62728", 2.5),
            _ => ("#ffffff", 1.0),
        };
        body.push_str(&format!(
            r##"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="24" rx="3" fill="rgb({},{},{})" fill-opacity="0.35" stroke="{stroke}" stroke-width="{sw}"/><g><title>id {id}</title><text x="{:.1}" y="{:.1}" font-family="DejaVu Sans Mono, Courier New, monospace" font-size="13" fill="#111">{}</text></g>"##,
            y - 17.0,
            c.0,
            c.1,
            c.2,
            x + 4.0,
            y,
            escape(&label)
        ));
        x += w + 3.0;
    }
    let height = (y + 20.0) as u32;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="18" font-family="sans-serif" font-size="14" font-weight="bold">{}</text>{body}</svg>"##,
        escape(title)
    );
    Figure::from_svg(svg, width, height)
}

/// The tokens of `text`, each in its own coloured box (colour by id).
pub fn token_view(tok: &TextTokenizer, text: &str) -> Result<Figure> {
    let pieces = tok.pieces(text)?;
    let title = format!(
        "{} characters → {} tokens",
        text.chars().count(),
        pieces.len()
    );
    Ok(token_boxes(&title, &pieces, None, 760))
}

/// A chat conversation's tokens with the SFT loss mask: red-bordered tokens
/// are the targets the loss counts (the assistant's answer and its end token).
pub fn loss_mask_view(tok: &TextTokenizer, conversation: &Conversation) -> Result<Figure> {
    let (ids, counts) = super::sft::tokenize_with_mask(tok, &conversation.messages)?;
    let pieces: Vec<(u32, String)> = ids
        .iter()
        .map(|&id| Ok((id, tok.decode(&[id], false)?)))
        .collect::<Result<_>>()?;
    let n = counts.iter().filter(|&&c| c).count();
    let title = format!(
        "{} tokens; the loss counts the {n} with red borders",
        ids.len()
    );
    Ok(token_boxes(&title, &pieces, Some(&counts), 760))
}

/// The `k` most likely next tokens after `prompt` under `cfg` (temperature,
/// top-k, top-p applied), as bars.
pub fn next_token_bars(
    lm: &LanguageModel,
    prompt: &str,
    cfg: &SamplingConfig,
    k: usize,
) -> Result<Figure> {
    let ids = lm.tokenizer.encode(prompt)?;
    let x = Tensor::new(ids.as_slice(), lm.device())?.unsqueeze(0)?;
    let logits = lm.model.forward(&x)?.logits;
    let last: Vec<f32> = logits.i((0, ids.len() - 1))?.to_vec1()?;
    let dist = next_token_distribution(&last, cfg);
    let shown = &dist[..dist.len().min(k)];
    let labels: Vec<String> = shown
        .iter()
        .map(|(id, _)| Ok(visible(&lm.tokenizer.decode(&[*id], false)?)))
        .collect::<Result<_>>()?;
    let probs: Vec<f64> = shown.iter().map(|d| d.1).collect();
    let title = format!(
        "π(next | \"{prompt}\"), T = {}{}{}",
        cfg.temperature,
        cfg.top_k
            .map(|k| format!(", top-k {k}"))
            .unwrap_or_default(),
        cfg.top_p
            .map(|p| format!(", top-p {p}"))
            .unwrap_or_default()
    );
    BarChart::new(title)
        .y_label("probability")
        .bars(&labels, &probs)
        .size(640, 320)
        .draw()
}

/// Attention probabilities of one head in one layer over `text`, as a heatmap
/// (rows: the query token, columns: the key token it reads).
pub fn attention_map(lm: &LanguageModel, text: &str, layer: usize, head: usize) -> Result<Figure> {
    let ids = lm.tokenizer.encode(text)?;
    let x = Tensor::new(ids.as_slice(), lm.device())?.unsqueeze(0)?;
    let att = lm.model.attention_maps(&x)?;
    let a = att
        .get(layer)
        .with_context(|| format!("layer {layer} does not exist ({} layers)", att.len()))?;
    let probs: Vec<Vec<f32>> = a.i((0, head))?.to_vec2()?;
    let labels: Vec<String> = ids
        .iter()
        .map(|&id| Ok(visible(&lm.tokenizer.decode(&[id], false)?)))
        .collect::<Result<_>>()?;
    let values = probs
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect();
    Heatmap::new(
        format!("layer {layer}, head {head}: who attends to whom"),
        values,
    )
    .row_labels(labels.clone())
    .col_labels(labels)
    .x_label("key (read)")
    .y_label("query (reading)")
    .range(0.0, 1.0)
    .size(620, 560)
    .draw()
}

/// SFT before/after per task kind: loss on the reference answers before and
/// after, and the behaviour shares before and after side by side (fact exact
/// match, harmful refusal-plus-help, readable answers, answers ending with the
/// end-of-turn token).
pub fn behaviour_figure(before: &[KindReport], after: &[KindReport]) -> Result<Figure> {
    let kinds: Vec<String> = before.iter().map(|r| r.kind.clone()).collect();
    let loss = |rs: &[KindReport]| -> Vec<f64> {
        kinds
            .iter()
            .map(|k| {
                rs.iter()
                    .find(|r| &r.kind == k)
                    .map(|r| r.loss)
                    .unwrap_or(f64::NAN)
            })
            .collect()
    };
    let share = |rs: &[KindReport], kind: &str, f: fn(&KindReport) -> Option<f64>| {
        rs.iter()
            .find(|r| r.kind == kind)
            .and_then(f)
            .unwrap_or(0.0)
    };
    let eos = |rs: &[KindReport]| {
        rs.iter().map(|r| r.ends_with_eos).sum::<f64>() / rs.len().max(1) as f64
    };
    let readable =
        |rs: &[KindReport]| rs.iter().map(|r| r.readable).sum::<f64>() / rs.len().max(1) as f64;
    let metrics = [
        "fact: exact match",
        "harmful: refuse + help",
        "readable (all kinds)",
        "ends with EOS (all kinds)",
    ];
    let shares = |rs: &[KindReport]| {
        [
            share(rs, "fact", |r| r.exact_match),
            share(rs, "harmful", |r| r.refusal_with_help),
            readable(rs),
            eos(rs),
        ]
    };
    let (shares_before, shares_after) = (shares(before), shares(after));
    // The two loss panels stand side by side: one y scale for both.
    let loss_panel = |title: &str, rs: &[KindReport]| {
        BarChart::new(title)
            .y_label("nats / token")
            .bars(&kinds, &loss(rs))
            .size(480, 300)
    };
    let (before_panel, after_panel) = (
        loss_panel("Loss on reference answers, before SFT", before),
        loss_panel("…and after SFT", after),
    );
    let (b0, b1) = before_panel.y_extent();
    let (a0, a1) = after_panel.y_extent();
    let (lo, hi) = (b0.min(a0), b1.max(a1));
    Ok(Figure::grid(
        &[
            before_panel.y_range(lo, hi).draw()?,
            after_panel.y_range(lo, hi).draw()?,
            BarChart::new("Behaviour before → after SFT")
                .y_label("share of test prompts")
                .grouped(
                    &metrics,
                    &[("before SFT", &shares_before), ("after SFT", &shares_after)],
                )
                .size(760, 320)
                .draw()?,
        ],
        2,
    ))
}

/// Training loss (smoothed) and held-out loss against updates.
pub fn loss_curve(history: &[TrainRecord], title: &str) -> Result<Figure> {
    let train: Vec<&TrainRecord> = history.iter().filter(|r| r.step > 0).collect();
    let xs: Vec<f64> = train.iter().map(|r| r.step as f64).collect();
    let ys: Vec<f64> = train.iter().map(|r| r.loss).collect();
    let evals: Vec<&TrainRecord> = history.iter().filter(|r| r.eval_loss().is_some()).collect();
    let ex: Vec<f64> = evals.iter().map(|r| r.step as f64).collect();
    let ey: Vec<f64> = evals
        .iter()
        .map(|r| r.eval_loss().unwrap_or(f64::NAN))
        .collect();
    LineChart::new(title)
        .x_label("update")
        .y_label("cross-entropy (nats / token)")
        .series("training batch", &xs, &ys)
        .series("held-out", &ex, &ey)
        .log_y(true)
        .draw()
}

/// Held-out loss against updates for several runs on one axis (e.g. full
/// fine-tuning against LoRA), log scale.
pub fn compare_loss_curves(runs: &[(&str, &[TrainRecord])], title: &str) -> Result<Figure> {
    let mut chart = LineChart::new(title)
        .x_label("update")
        .y_label("held-out cross-entropy (nats / token)")
        .log_y(true);
    for (name, history) in runs {
        let evals: Vec<&TrainRecord> = history.iter().filter(|r| r.eval_loss().is_some()).collect();
        let xs: Vec<f64> = evals.iter().map(|r| r.step as f64).collect();
        let ys: Vec<f64> = evals
            .iter()
            .map(|r| r.eval_loss().unwrap_or(f64::NAN))
            .collect();
        chart = chart.series(*name, &xs, &ys);
    }
    chart.draw()
}

/// LoRA drawn to scale for one projection: the frozen W (d_out × d_in) beside
/// the trained B (d_out × r) times A (r × d_in), each labelled with its
/// parameter count (r drawn at least 3 pixels wide to stay visible).
pub fn lora_diagram(d_in: usize, d_out: usize, r: usize) -> Figure {
    let scale = 220.0 / d_in.max(d_out) as f64;
    let px = |n: usize| (n as f64 * scale).max(3.0);
    let (w_w, w_h, thin) = (px(d_in), px(d_out), px(r));
    let (width, height) = (760u32, (w_h + 120.0) as u32);
    let top = 50.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13"><rect width="{width}" height="{height}" fill="white"/>"#
    );
    let mut text = |x: f64, y: f64, s: &str, size: u32| {
        svg.push_str(&format!(
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="middle">{}</text>"#,
            escape(s)
        ));
    };
    text(
        380.0,
        24.0,
        &format!("y = W x + (α/r)·B A x, one {d_out} × {d_in} projection, r = {r}"),
        15,
    );
    let x_w = 110.0;
    let x_b = x_w + w_w + 90.0;
    let x_a = x_b + thin + 40.0;
    let below = top + w_h + 22.0;
    text(
        x_w + w_w / 2.0,
        below,
        &format!("W (frozen): {} weights", d_in * d_out),
        13,
    );
    text(
        x_b + thin / 2.0 + 30.0,
        below,
        &format!("B: {d_out} × {r}"),
        13,
    );
    text(
        x_a + w_w / 2.0,
        top + thin + 22.0,
        &format!("A: {r} × {d_in}"),
        13,
    );
    text(
        x_a + w_w / 2.0,
        top + thin + 44.0,
        &format!("A and B: {} trained", r * (d_in + d_out)),
        13,
    );
    text(x_w + w_w + 45.0, top + w_h / 2.0, "+", 28);
    text(x_b + thin + 20.0, top + thin / 2.0 + 6.0, "×", 18);
    for (x, y, w, h, colour) in [
        (x_w, top, w_w, w_h, "#bab0ac"),
        (x_b, top, thin, w_h, "#f28e2b"),
        (x_a, top, w_w, thin, "#4e79a7"),
    ] {
        svg.push_str(&format!(
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}" stroke="black"/>"#
        ));
    }
    svg.push_str("</svg>");
    Figure::from_svg(svg, width, height)
}

/// Trainable parameters of LoRA as a share of the model's, per rank r: with
/// adapters on q and v only (PEFT's default) and on all seven projections.
/// `total` is the model's parameter count.
pub fn lora_parameters_figure(
    title: &str,
    config: &super::LlamaConfig,
    total: usize,
    ranks: &[usize],
) -> Result<Figure> {
    use super::lora::{lora_parameters, LoraConfig};
    let share = |targets: &[&str]| -> Vec<f64> {
        ranks
            .iter()
            .map(|&r| {
                100.0 * lora_parameters(config, &LoraConfig::new(r, r as f64, targets)) as f64
                    / total as f64
            })
            .collect()
    };
    let (qv, all) = (share(&["q_proj", "v_proj"]), share(&["all-linear"]));
    let labels: Vec<String> = ranks.iter().map(|r| format!("r = {r}")).collect();
    BarChart::new(title)
        .y_label("trainable parameters, % of full fine-tuning")
        .grouped(&labels, &[("q, v", &qv), ("all seven projections", &all)])
        .size(640, 340)
        .draw()
}

const MIB: f64 = (1u64 << 20) as f64;

/// Measured memory (peak RSS above the program's own) per setup, one bar per
/// precision; a setup a precision cannot run (training an int8 base) is left at 0.
pub fn memory_figure(title: &str, rows: &[super::memory::MemoryMeasurement]) -> Result<Figure> {
    use super::memory::{Precision, Setup};
    let setups: Vec<Setup> = Setup::ALL
        .into_iter()
        .filter(|s| rows.iter().any(|r| r.setup == *s))
        .collect();
    let series: Vec<(&str, Vec<f64>)> = Precision::ALL
        .iter()
        .filter(|p| rows.iter().any(|r| r.precision == **p))
        .map(|p| {
            let v = setups
                .iter()
                .map(|s| {
                    rows.iter()
                        .find(|r| r.setup == *s && r.precision == *p)
                        .map_or(0.0, |r| r.measured_bytes() as f64 / MIB)
                })
                .collect();
            (p.name(), v)
        })
        .collect();
    let refs: Vec<(&str, &[f64])> = series.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let labels: Vec<&str> = setups.iter().map(|s| s.name()).collect();
    BarChart::new(title)
        .y_label("peak RSS above start (MiB)")
        .grouped(&labels, &refs)
        .size(760, 360)
        .draw()
}

/// Markdown: per setup and precision, the arithmetic (weights, gradients,
/// AdamW) next to the measured memory, and the speed.
pub fn memory_measurement_table(rows: &[super::memory::MemoryMeasurement]) -> String {
    let mib = |b: f64| format!("{:.0}", b / MIB);
    let mut s = String::from(
        "| setup | precision | trained parameters | weights | gradients | AdamW | arithmetic | models held (RSS) | peak (RSS) | tokens/s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let a = r.arithmetic;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | **{}** | {} | **{}** | {:.0} |\n",
            r.setup.name(),
            r.precision.name(),
            r.trainable_parameters,
            mib(a.weights as f64),
            mib(a.gradients as f64),
            mib(a.optimizer as f64),
            mib(a.total() as f64),
            mib(r.rss_models_bytes.saturating_sub(r.rss_before_bytes) as f64),
            mib(r.measured_bytes() as f64),
            r.tokens_per_sec
        ));
    }
    s.push_str("\n(MiB; RSS columns are above what the program held before loading.)");
    s
}

/// Markdown: each precision's logits, greedy text and perplexity against f32.
pub fn precision_quality_table(rows: &[super::memory::PrecisionQuality]) -> String {
    let mut s = String::from(
        "| precision | max abs logit difference vs f32 | greedy continuations equal to f32's | held-out perplexity |\n|---|---:|---:|---:|\n",
    );
    for q in rows {
        s.push_str(&format!(
            "| {} | {:.4} | {} of {} | {:.3} |\n",
            q.precision.name(),
            q.max_logit_diff,
            q.same_as_f32,
            q.continuations.len(),
            q.perplexity
        ));
    }
    s
}

/// Who holds what under data, tensor and pipeline parallelism, for a
/// two-layer model on two devices (an explanation: one machine cannot run it).
pub fn parallelism_figure() -> Figure {
    let (w, h) = (900u32, 304u32);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12"><rect width="{w}" height="{h}" fill="white"/>"#
    );
    let colours = ["#4e79a7", "#f28e2b"];
    // (name, two lines of note, the layers each of two devices holds)
    type Panel<'a> = (&'a str, [&'a str; 2], [[&'a str; 2]; 2]);
    let panels: [Panel; 3] = [
        (
            "data parallel",
            [
                "same weights, different batches;",
                "gradients averaged (all-reduce)",
            ],
            [
                ["layer 1 (all)", "layer 2 (all)"],
                ["layer 1 (all)", "layer 2 (all)"],
            ],
        ),
        (
            "tensor parallel",
            [
                "each matrix split by columns / rows;",
                "partial results exchanged every layer",
            ],
            [
                ["layer 1, left half", "layer 2, left half"],
                ["layer 1, right half", "layer 2, right half"],
            ],
        ),
        (
            "pipeline parallel",
            ["whole layers per device;", "micro-batches flow through"],
            [["layer 1", ""], ["", "layer 2"]],
        ),
    ];
    for (p, (name, note, devices)) in panels.iter().enumerate() {
        let x0 = 20 + p as u32 * 295;
        svg.push_str(&format!(
            r##"<text x="{x0}" y="24" font-size="15" font-weight="bold">{name}</text><text x="{x0}" y="42" fill="#555">{}</text><text x="{x0}" y="58" fill="#555">{}</text>"##,
            note[0], note[1]
        ));
        for (d, layers) in devices.iter().enumerate() {
            let y0 = 74 + d as u32 * 105;
            svg.push_str(&format!(
                r##"<rect x="{x0}" y="{y0}" width="270" height="90" rx="6" fill="none" stroke="#333"/><text x="{}" y="{}" fill="#333">device {}</text>"##,
                x0 + 8,
                y0 + 16,
                d
            ));
            for (l, layer) in layers.iter().enumerate() {
                if layer.is_empty() {
                    continue;
                }
                let ly = y0 + 26 + l as u32 * 30;
                svg.push_str(&format!(
                    r#"<rect x="{}" y="{ly}" width="250" height="24" rx="3" fill="{}" opacity="0.8"/><text x="{}" y="{}" fill="white">{layer}</text>"#,
                    x0 + 10,
                    colours[l],
                    x0 + 18,
                    ly + 16
                ));
            }
        }
    }
    svg.push_str("</svg>");
    Figure::from_svg(svg, w, h)
}

/// Mean attention share of each head on the previous, first and current token
/// (see [`super::head_patterns`]): one heatmap per target, layers × heads, for
/// each labelled measurement (e.g. before and after pre-training), one row each.
pub fn head_patterns_figure(rows: &[(&str, &HeadPatterns)]) -> Result<Figure> {
    let mut panels = Vec::new();
    for (label, patterns) in rows {
        for target in AttentionTarget::ALL {
            let grid = patterns.grid(target);
            let (layers, heads) = (grid.len(), grid.first().map_or(0, Vec::len));
            // Small models get every label and the numbers in the cells; deep
            // ones (SmolLM2's 30 layers) every fifth layer and colour alone.
            let small = layers * heads <= 64;
            let layer_label = |l: usize| match (small, l % 5) {
                (true, _) => format!("layer {l}"),
                (false, 0) => format!("{l}"),
                _ => String::new(),
            };
            panels.push(
                Heatmap::new(format!("{label}: {}", target.name()), grid.clone())
                    .row_labels((0..layers).map(layer_label).collect())
                    .col_labels((0..heads).map(|h| format!("head {h}")).collect())
                    .y_label(if small { "" } else { "layer" })
                    .range(0.0, 1.0)
                    .annotate(small)
                    .size(360, (120 + 12 * layers as u32).max(300))
                    .draw()?,
            );
        }
    }
    Ok(Figure::grid(&panels, AttentionTarget::ALL.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_pieces_are_valid_svg_text() {
        assert_eq!(visible("a b\n\u{15}"), "a·b⏎\\x15");
        let fig = token_boxes("t", &[(1, "x\u{1}<".into())], None, 200);
        assert!(Figure::from_svg_document(fig.svg().to_string()).is_ok());
    }
}
