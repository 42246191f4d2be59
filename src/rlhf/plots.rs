//! The figures and tables of notebooks 06 (the reward model) and 07 (PPO).

use super::best_of_n::BestOfNPoint;
use super::dpo::DpoRecord;
use super::overoptimization::{DriftPoint, GoldFit};
use super::ppo::{HeldOutRecord, PolicyEvaluation, PpoRecord, PpoTrainer, UpdateAnatomy};
use super::ppo_run::PpoRun;
use super::preferences::PreferenceData;
use super::reward_analysis::{CalibrationBin, EditEffect, ScoredAnswer};
use crate::feedback::gold::{split_turn, TurnText};
use crate::feedback::records::{Comparison, Winner};
use crate::lm::TrainRecord;
use crate::plot::{BarChart, Figure, Heatmap, LineChart, ScatterPlot};
use anyhow::Result;

/// A comparison as a labeller saw it: the prompt, both answers (an answer the
/// model never ended is marked "[cut off]"), and the verdict.
pub fn comparison_text(c: &Comparison) -> String {
    let show = |t: &str| {
        let TurnText { text, ended } = split_turn(t);
        let text = text.replace('\n', " / ");
        if ended {
            text
        } else {
            format!("{text} [cut off]")
        }
    };
    let verdict = match c.winner {
        Winner::A => "A",
        Winner::B => "B",
        Winner::Tie => "a tie",
    };
    format!(
        "prompt: {}\n  A ({}): {}\n  B ({}): {}\n  {} preferred {verdict}",
        c.prompt,
        c.system_a,
        show(&c.response_a),
        c.system_b,
        show(&c.response_b),
        c.annotator
    )
}

/// Reward-model training: the training loss per update (smoothed) and, at
/// each evaluation, the held-out pairwise accuracy against the annotators and
/// against the gold standard.
pub fn reward_training_curves(history: &[TrainRecord]) -> Result<Figure> {
    let train: Vec<&TrainRecord> = history.iter().filter(|r| r.step > 0).collect();
    let xs: Vec<f64> = train.iter().map(|r| r.step as f64).collect();
    let ys: Vec<f64> = train.iter().map(|r| r.loss).collect();
    let evals: Vec<&TrainRecord> = history.iter().filter(|r| r.eval.is_some()).collect();
    let ex: Vec<f64> = evals.iter().map(|r| r.step as f64).collect();
    let metric = |name: &str| -> Vec<f64> {
        evals
            .iter()
            .map(|r| r.eval_metric(name).unwrap_or(f64::NAN))
            .collect()
    };
    Ok(Figure::grid(
        &[
            LineChart::new("Training loss −log σ(r_chosen − r_rejected)")
                .x_label("update")
                .y_label("loss (batch of comparisons)")
                .series("training batch", &xs, &ys)
                .series("held-out", &ex, &metric("loss"))
                .smoothing(0.8)
                .size(480, 340)
                .draw()?,
            LineChart::new("Held-out pairwise accuracy")
                .x_label("update")
                .y_label("share ranked right")
                .series("vs the annotators", &ex, &metric("accuracy"))
                .series("vs the gold standard", &ex, &metric("accuracy_vs_gold"))
                .hline("chance", 0.5)
                .size(480, 340)
                .draw()?,
        ],
        2,
    ))
}

/// Reward against gold score, one point per answer, the model's own answers
/// and the written styles in two colours.
pub fn reward_vs_gold(answers: &[ScoredAnswer], title: &str) -> Result<Figure> {
    let (own, written): (Vec<&ScoredAnswer>, Vec<&ScoredAnswer>) =
        answers.iter().partition(|a| a.source.starts_with("sft"));
    let xs = |v: &[&ScoredAnswer]| v.iter().map(|a| a.gold).collect::<Vec<_>>();
    let ys = |v: &[&ScoredAnswer]| v.iter().map(|a| a.reward).collect::<Vec<_>>();
    ScatterPlot::new(title)
        .x_label("gold score")
        .y_label("reward (normalised)")
        .points("SFT model's answers", &xs(&own), &ys(&own))
        .points("written styles", &xs(&written), &ys(&written))
        .draw()
}

/// A calibration curve: predicted P(A preferred) against how often A was
/// preferred, with the diagonal of perfect calibration.
pub fn calibration_figure(bins: &[CalibrationBin]) -> Result<Figure> {
    let xs: Vec<f64> = bins.iter().map(|b| b.predicted).collect();
    let ys: Vec<f64> = bins.iter().map(|b| b.observed).collect();
    ScatterPlot::new("Calibration on held-out comparisons")
        .x_label("predicted P(A preferred) = σ(r_A − r_B)")
        .y_label("share of comparisons A won")
        .line("perfectly calibrated", &[0.0, 1.0], &[0.0, 1.0])
        .line("reward model", &xs, &ys)
        .points("bins", &xs, &ys)
        .size(640, 420)
        .draw()
}

/// What each edit of an answer does to the reward and to the gold score,
/// both in standard deviations (of rewards, and of the SFT answers' gold
/// scores), as grouped bars on one axis: a reward bar well above its gold bar
/// is a flaw an optimiser can use.
pub fn edit_effects_figure(effects: &[EditEffect]) -> Result<Figure> {
    let labels: Vec<&str> = effects.iter().map(|e| e.edit.label()).collect();
    let reward: Vec<f64> = effects.iter().map(|e| e.reward_change).collect();
    let gold: Vec<f64> = effects.iter().map(|e| e.gold_change_std).collect();
    BarChart::new("What an edit does to the reward and to the gold score")
        .y_label("mean change (standard deviations)")
        .grouped(&labels, &[("reward", &reward), ("gold", &gold)])
        .size(760, 380)
        .draw()
}

/// A table of one metric (rows: objectives, columns: crowds) as an annotated heatmap.
pub fn objectives_heatmap(
    title: &str,
    objectives: &[String],
    crowds: &[String],
    values: Vec<Vec<f64>>,
) -> Result<Figure> {
    Heatmap::new(title, values)
        .row_labels(objectives.to_vec())
        .col_labels(crowds.to_vec())
        .x_label("who labelled")
        .y_label("objective")
        .annotate(true)
        .size(760, 320)
        .draw()
}

/// Per source of answers: how many, mean gold score, mean words, share never ended.
pub fn sources_table(data: &PreferenceData) -> String {
    let mut rows: Vec<(String, f64, f64, usize, usize)> = Vec::new();
    for r in &data.responses {
        let TurnText { text, ended } = split_turn(&r.text);
        let words = crate::feedback::gold::word_count(text) as f64;
        match rows.iter_mut().find(|x| x.0 == r.source) {
            Some(x) => {
                x.1 += r.gold;
                x.2 += words;
                x.3 += 1;
                x.4 += usize::from(!ended);
            }
            None => rows.push((r.source.clone(), r.gold, words, 1, usize::from(!ended))),
        }
    }
    let mut s = format!(
        "{:<16} {:>7} {:>10} {:>10} {:>12}\n",
        "source", "answers", "mean gold", "mean words", "cut off"
    );
    for (source, gold, words, n, cut) in rows {
        let n_f = n as f64;
        s.push_str(&format!(
            "{source:<16} {n:>7} {:>10.2} {:>10.1} {:>11.0}%\n",
            gold / n_f,
            words / n_f,
            100.0 * cut as f64 / n_f
        ));
    }
    s
}

/// One PPO run for [`ppo_curves`]: its training records and its held-out measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoCurve {
    pub name: String,
    pub history: Vec<PpoRecord>,
    pub held_out: Vec<HeldOutRecord>,
}

impl PpoCurve {
    /// The run a trainer has made so far.
    pub fn of_trainer(name: impl Into<String>, trainer: &PpoTrainer) -> Self {
        Self {
            name: name.into(),
            history: trainer.history.clone(),
            held_out: trainer.held_out.clone(),
        }
    }

    /// A finished run read from disk.
    pub fn of_run(name: impl Into<String>, run: &PpoRun) -> Self {
        Self {
            name: name.into(),
            history: run.history.clone(),
            held_out: run.held_out.clone(),
        }
    }
}

/// PPO runs side by side, one series per run (for example one per β). Top
/// row: the held-out measurements — gold score, proxy score, KL per answer —
/// the same prompts each time, from iteration 0 (the SFT model). Bottom row:
/// the training rollouts, smoothed — the score PPO maximises, the entropy
/// per token, the answer length.
pub fn ppo_curves(runs: &[PpoCurve]) -> Result<Figure> {
    let chart = |title: &str, y: &str| {
        LineChart::new(title)
            .x_label("PPO iteration")
            .y_label(y)
            .size(430, 320)
    };
    let held_out = |title: &str, y: &str, f: fn(&PolicyEvaluation) -> f64| -> Result<Figure> {
        let mut c = chart(title, y);
        for r in runs {
            let xs: Vec<f64> = r.held_out.iter().map(|m| m.iteration as f64).collect();
            let ys: Vec<f64> = r.held_out.iter().map(|m| f(&m.evaluation)).collect();
            c = c.series(r.name.clone(), &xs, &ys);
        }
        c.draw()
    };
    let training = |title: &str, y: &str, f: fn(&PpoRecord) -> f64| -> Result<Figure> {
        let mut c = chart(title, y).smoothing(0.6);
        for r in runs {
            let xs: Vec<f64> = r.history.iter().map(|h| h.iteration as f64).collect();
            let ys: Vec<f64> = r.history.iter().map(f).collect();
            c = c.series(r.name.clone(), &xs, &ys);
        }
        c.draw()
    };
    Ok(Figure::grid(
        &[
            held_out("Held-out gold score (the truth)", "mean gold score", |e| {
                e.gold_score
            })?,
            held_out(
                "Held-out reward-model score (the proxy)",
                "mean reward",
                |e| e.proxy_score,
            )?,
            held_out("Held-out KL(π ‖ π_ref) per answer", "nats", |e| e.kl)?,
            training("Training rollouts: the score PPO sees", "mean score", |r| {
                r.proxy_score
            })?,
            training("Training rollouts: entropy per token", "nats", |r| {
                r.entropy
            })?,
            training("Training rollouts: answer length", "tokens", |r| {
                r.answer_length
            })?,
        ],
        3,
    ))
}

/// One answer's update, token by token: the KL penalty, the reward (the
/// score lands on the last token), the value and the advantage, and the
/// probability ratio after the update with the clip band [1 − ε, 1 + ε].
pub fn anatomy_figure(a: &UpdateAnatomy) -> Result<Figure> {
    let xs: Vec<f64> = (0..a.tokens.len()).map(|i| i as f64).collect();
    let n = xs.len().max(1) as f64;
    Ok(Figure::grid(
        &[
            LineChart::new("Per-token reward r_t = −β·KL_t (+ score at the end)")
                .x_label("answer token")
                .y_label("reward")
                .series("−β·KL_t", &xs, &a.kl_penalty)
                .series("r_t", &xs, &a.rewards)
                .size(480, 320)
                .draw()?,
            LineChart::new("Value V(s_t), return R̂_t, advantage Â_t")
                .x_label("answer token")
                .y_label("value / advantage")
                .series("V(s_t)", &xs, &a.values)
                .series("R̂_t", &xs, &a.returns)
                .series("Â_t (whitened)", &xs, &a.advantages)
                .size(480, 320)
                .draw()?,
            LineChart::new("Ratio π_new / π_old after the update")
                .x_label("answer token")
                .y_label("ratio")
                .series("ratio", &xs, &a.ratio)
                .series("1 + ε", &[0.0, n - 1.0], &[1.0 + a.clip_range; 2])
                .series("1 − ε", &[0.0, n - 1.0], &[1.0 - a.clip_range; 2])
                .size(480, 320)
                .draw()?,
        ],
        3,
    ))
}

/// Gold and proxy score against d = √KL, in two panels with one colour per
/// optimiser: left the gold score with the fitted d(α − βd) over the best-of-n
/// points and d(α − β log d) over the PPO points, right the proxy score that
/// was optimised. Scores are measured from the SFT policy's (R(0) = 0).
pub fn overoptimization_figure(
    best_of_n: &[DriftPoint],
    bon_fit: &GoldFit,
    ppo_runs: &[(String, Vec<DriftPoint>)],
    rl_fit: &GoldFit,
) -> Result<Figure> {
    let d = |pts: &[DriftPoint]| pts.iter().map(|p| p.d).collect::<Vec<_>>();
    let gold = |pts: &[DriftPoint]| pts.iter().map(|p| p.gold_gain).collect::<Vec<_>>();
    let proxy = |pts: &[DriftPoint]| pts.iter().map(|p| p.proxy_gain).collect::<Vec<_>>();
    let d_max = best_of_n
        .iter()
        .chain(ppo_runs.iter().flat_map(|(_, p)| p))
        .map(|p| p.d)
        .fold(0.0, f64::max)
        .max(1e-3);
    let grid: Vec<f64> = (0..=60).map(|i| d_max * i as f64 / 60.0).collect();
    let bon_line: Vec<f64> = grid.iter().map(|&x| bon_fit.best_of_n(x)).collect();
    let rl_line: Vec<f64> = grid.iter().map(|&x| rl_fit.rl(x)).collect();
    let panel = |title: &str, score: &dyn Fn(&[DriftPoint]) -> Vec<f64>| {
        // The same optimiser has the same colour (group index) in both panels.
        let mut plot = ScatterPlot::new(title)
            .x_label("d = √KL(π ‖ π_SFT)  (nats^½)")
            .y_label("score − SFT's score")
            .points("best-of-n", &d(best_of_n), &score(best_of_n))
            .size(640, 440);
        for (name, pts) in ppo_runs {
            plot = plot.points(name.clone(), &d(pts), &score(pts));
        }
        plot
    };
    Ok(Figure::grid(
        &[
            panel("Gold score (the truth)", &gold)
                .line("fit d(α − βd), best-of-n", &grid, &bon_line)
                .line("fit d(α − β log d), PPO", &grid, &rl_line)
                .draw()?,
            panel("Reward-model score (the proxy)", &proxy).draw()?,
        ],
        2,
    ))
}

/// Policies side by side on held-out prompts: gold and proxy scores, KL from
/// the SFT model, answer length, share of answers that ended, and the
/// held-out pre-training corpus loss (the alignment tax), one row per policy.
pub fn evaluation_table(rows: &[PolicyRow]) -> String {
    let w = rows
        .iter()
        .map(|r| r.name.chars().count())
        .chain(["policy".len()])
        .max()
        .unwrap_or(6);
    let mut s = format!(
        "{:<w$} {:>7} {:>8} {:>7} {:>8} {:>7} {:>12}\n",
        "policy", "gold", "proxy", "KL", "length", "ended", "corpus loss"
    );
    for r in rows {
        let e = &r.evaluation;
        s.push_str(&format!(
            "{:<w$} {:>7.2} {:>8.2} {:>7.2} {:>8.1} {:>6.0}% {:>12.3}\n",
            r.name,
            e.gold_score,
            e.proxy_score,
            e.kl,
            e.answer_length,
            100.0 * e.ended,
            r.corpus_loss
        ));
    }
    s
}

/// One row of [`evaluation_table`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRow {
    pub name: String,
    pub evaluation: PolicyEvaluation,
    /// Next-token loss on the held-out pre-training text.
    pub corpus_loss: f64,
}

/// One DPO run, named, for [`dpo_curves`].
#[derive(Debug, Clone)]
pub struct DpoCurve {
    pub name: String,
    pub history: Vec<TrainRecord>,
}

/// DPO runs side by side, one series per run. Top row, held-out: the gold
/// score of the policy's own answers, their KL to the reference, and the
/// implicit reward's accuracy on held-out comparisons (against the labels
/// and against gold). Bottom row: the training loss and the implicit rewards
/// of chosen and rejected answers (training batches, smoothed), and the mean
/// log-probabilities of the held-out pairs' answers — where DPO's known habit
/// shows: the chosen answers' log-probs can fall while the margin grows.
pub fn dpo_curves(runs: &[DpoCurve]) -> Result<Figure> {
    let chart = |title: &str, y: &str| {
        LineChart::new(title)
            .x_label("DPO update")
            .y_label(y)
            .size(430, 320)
    };
    let eval_points = |r: &DpoCurve, name: &str| -> (Vec<f64>, Vec<f64>) {
        r.history
            .iter()
            .filter_map(|h| Some((h.step as f64, h.eval_metric(name)?)))
            .unzip()
    };
    let train_points = |r: &DpoCurve, name: &str| -> (Vec<f64>, Vec<f64>) {
        r.history
            .iter()
            .filter(|h| h.step > 0)
            .filter_map(|h| {
                let v = if name == "loss" {
                    h.loss
                } else {
                    *h.train.get(name)?
                };
                Some((h.step as f64, v))
            })
            .unzip()
    };
    let held_out = |title: &str, y: &str, names: &[(&str, &str)]| -> Result<Figure> {
        let mut c = chart(title, y);
        for r in runs {
            for (metric, label) in names {
                let (xs, ys) = eval_points(r, metric);
                let name = if label.is_empty() {
                    r.name.clone()
                } else {
                    format!("{} {label}", r.name)
                };
                c = c.series(name, &xs, &ys);
            }
        }
        c.draw()
    };
    let training = |title: &str, y: &str, names: &[(&str, &str)]| -> Result<Figure> {
        let mut c = chart(title, y).smoothing(0.8);
        for r in runs {
            for (metric, label) in names {
                let (xs, ys) = train_points(r, metric);
                let name = if label.is_empty() {
                    r.name.clone()
                } else {
                    format!("{} {label}", r.name)
                };
                c = c.series(name, &xs, &ys);
            }
        }
        c.draw()
    };
    Ok(Figure::grid(
        &[
            held_out(
                "Held-out gold score of the policy's answers",
                "mean gold score",
                &[("held_out/gold", "")],
            )?,
            held_out(
                "Held-out KL(π ‖ π_ref) per answer",
                "nats",
                &[("held_out/kl", "")],
            )?,
            held_out(
                "Implicit reward's accuracy on held-out pairs",
                "share of pairs",
                &[
                    ("rewards/accuracies", "labels"),
                    ("rewards/gold_accuracies", "gold"),
                ],
            )?,
            training("Training loss", "loss", &[("loss", "")])?,
            training(
                "Implicit rewards β·log π/π_ref",
                "reward",
                &[
                    ("rewards/chosen", "chosen"),
                    ("rewards/rejected", "rejected"),
                ],
            )?,
            held_out(
                "Held-out pairs: mean log π(y|x)",
                "nats",
                &[("logps/chosen", "chosen"), ("logps/rejected", "rejected")],
            )?,
        ],
        3,
    ))
}

/// One method's policies measured on the held-out prompts, as points
/// (KL to the reference, gold score) in training order, for [`frontier_figure`].
#[derive(Debug, Clone, PartialEq)]
pub struct FrontierSeries {
    pub name: String,
    /// KL(π ‖ π_ref) per answer, nats (best-of-n: the analytic bound).
    pub kl: Vec<f64>,
    pub gold: Vec<f64>,
}

impl FrontierSeries {
    /// A PPO run's held-out measurements, iteration 0 (the SFT model) first.
    pub fn of_ppo(name: impl Into<String>, run: &PpoRun) -> Self {
        Self {
            name: name.into(),
            kl: run.held_out.iter().map(|m| m.evaluation.kl).collect(),
            gold: run
                .held_out
                .iter()
                .map(|m| m.evaluation.gold_score)
                .collect(),
        }
    }

    /// A DPO run's held-out measurements, update 0 (the SFT model) first.
    pub fn of_dpo(name: impl Into<String>, run: &DpoRecord) -> Self {
        let points = run.held_out();
        Self {
            name: name.into(),
            kl: points.iter().map(|(_, e)| e.kl).collect(),
            gold: points.iter().map(|(_, e)| e.gold_score).collect(),
        }
    }

    /// Best-of-n for n = 1, 2, 4, …: KL ≤ log n − (n − 1)/n.
    pub fn of_best_of_n(name: impl Into<String>, curve: &[BestOfNPoint]) -> Self {
        Self {
            name: name.into(),
            kl: curve.iter().map(|p| p.kl).collect(),
            gold: curve.iter().map(|p| p.gold_score).collect(),
        }
    }
}

/// The frontier each method reaches: gold score of the policy's answers to
/// held-out prompts against how far it moved from the reference, KL(π‖π_ref)
/// per answer. A path per method (a training run's measurements in order, or
/// best-of-n's n = 1, 2, 4, …); a lone point (the SFT model) is a dot. Up and
/// to the left is better: more gold for less drift.
pub fn frontier_figure(series: &[FrontierSeries]) -> Result<Figure> {
    let mut plot = ScatterPlot::new("Gold score against KL from the reference, held-out prompts")
        .x_label("KL(π ‖ π_ref) per answer, nats")
        .y_label("mean gold score")
        .size(860, 480)
        .legend_width(240);
    for s in series {
        plot = if s.kl.len() == 1 {
            plot.points(s.name.clone(), &s.kl, &s.gold)
        } else {
            plot.path(s.name.clone(), &s.kl, &s.gold)
        };
    }
    plot.draw()
}

/// Position bias of judges (RLAIF): how often each picks the answer shown
/// first when asked once, and after averaging both orders; ½ is unbiased.
pub fn position_bias_figure(reports: &[&super::judge::JudgeReport]) -> Result<Figure> {
    let names: Vec<&str> = reports.iter().map(|r| r.judge.as_str()).collect();
    let once: Vec<f64> = reports
        .iter()
        .map(|r| r.position_bias_as_shown.first_chosen)
        .collect();
    let consistency: Vec<f64> = reports
        .iter()
        .map(|r| r.position_bias_as_shown.consistency)
        .collect();
    let averaged: Vec<f64> = reports
        .iter()
        .map(|r| r.position_bias_averaged.first_chosen)
        .collect();
    BarChart::new("Position bias (unbiased: ½ for the first answer, 1 for the same answer)")
        .y_label("share of pairs or verdicts")
        .grouped(
            &names,
            &[
                ("first answer, asked once", &once),
                ("same answer in both orders", &consistency),
                ("first answer, orders averaged", &averaged),
            ],
        )
        .size(760, 400)
        .draw()
}

/// Cohen's κ with the gold standard per principle at stake (RLAIF), one bar
/// per labeller: 0 is chance, 1 full agreement. (Raw agreement would flatter a
/// labeller that always says "A" wherever the data lists the better answer first.)
pub fn principle_agreement_figure(
    labellers: &[(&str, &[super::judge::PrincipleAgreement])],
) -> Result<Figure> {
    let Some((_, first)) = labellers.first() else {
        anyhow::bail!("no labellers to draw");
    };
    let labels: Vec<String> = first
        .iter()
        .map(|p| format!("{} ({})", p.principle, p.agreement.pairs))
        .collect();
    let values: Vec<Vec<f64>> = labellers
        .iter()
        .map(|(_, ps)| {
            ps.iter()
                .map(|p| {
                    if p.agreement.kappa.is_finite() {
                        p.agreement.kappa
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let series: Vec<(&str, &[f64])> = labellers
        .iter()
        .zip(&values)
        .map(|((name, _), v)| (*name, v.as_slice()))
        .collect();
    BarChart::new("Cohen's κ with the gold standard, per principle at stake (pairs); 0 = chance")
        .y_label("κ with gold")
        .grouped(&labels, &series)
        .size(980, 440)
        .draw()
}
