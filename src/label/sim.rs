//! Simulated annotators ([`crate::feedback::annotators`]) that label through
//! the same HTTP endpoints as people: each picks a name, asks for its next
//! pair, judges it with its own taste and noise, and posts the verdict to
//! `POST /arena` as the page's form would. For notebooks in headless runs,
//! tests and the load benchmark.

use super::client::HttpClient;
use crate::feedback::annotators::Annotator;
use crate::feedback::candidates::{Prompt, PromptKind};
use crate::feedback::records::Winner;
use anyhow::{bail, Context, Result};
use gridworld::Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// One thread, and one name, per annotator.
    pub annotators: Vec<Annotator>,
    /// Pairs each annotator judges (fewer if it runs out of pairs).
    pub judgements_per_annotator: usize,
    /// Prompts with their kinds, so the gold features an annotator's taste
    /// weighs are those of the real prompt; a prompt not listed here is judged
    /// as an advice request.
    pub prompts: Vec<Prompt>,
    /// The server's shared secret, when it has one.
    pub token: Option<String>,
    pub seed: u64,
}

impl SimConfig {
    /// `annotators` judging `judgements_per_annotator` pairs each, no prompt kinds, no token.
    pub fn new(annotators: Vec<Annotator>, judgements_per_annotator: usize) -> Self {
        Self {
            annotators,
            judgements_per_annotator,
            prompts: Vec::new(),
            token: None,
            seed: 0,
        }
    }
}

/// One judgement the server acknowledged (answered 303).
#[derive(Debug, Clone, PartialEq)]
pub struct Acknowledged {
    pub submission_id: String,
    pub annotator: String,
    /// How long the `POST /arena` took.
    pub latency: Duration,
}

/// What a simulation did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub acknowledged: Vec<Acknowledged>,
    /// Annotators that stopped early, with the reason (a refused connection
    /// when the server is killed, an unexpected status…).
    pub errors: Vec<String>,
}

/// Run every annotator of `config` against the server at `url`, each on its
/// own thread, and report what the server acknowledged. An annotator that
/// meets an error stops and says why in [`SimReport::errors`]; the others go on.
pub fn simulate_annotators(url: &str, config: &SimConfig) -> Result<SimReport> {
    HttpClient::new(url)?;
    let prompts: HashMap<&str, &Prompt> =
        config.prompts.iter().map(|p| (p.id.as_str(), p)).collect();
    let results: Vec<(Vec<Acknowledged>, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = config
            .annotators
            .iter()
            .enumerate()
            .map(|(i, annotator)| {
                let prompts = &prompts;
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    let seed = config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
                    let r = run_annotator(url, config, annotator, prompts, seed, &mut acked);
                    (acked, r.err().map(|e| format!("{}: {e:#}", annotator.name)))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (Vec::new(), Some("thread panicked".into())))
            })
            .collect()
    });
    let mut report = SimReport::default();
    for (acked, err) in results {
        report.acknowledged.extend(acked);
        report.errors.extend(err);
    }
    Ok(report)
}

fn run_annotator(
    url: &str,
    config: &SimConfig,
    annotator: &Annotator,
    prompts: &HashMap<&str, &Prompt>,
    seed: u64,
    acked: &mut Vec<Acknowledged>,
) -> Result<()> {
    let mut client = HttpClient::new(url)?;
    if let Some(t) = &config.token {
        client.cookies.insert(
            super::auth::TOKEN_COOKIE.into(),
            super::escape::url_component(t),
        );
    }
    let start = client.get("/")?;
    if start.status != 200 {
        bail!("GET / answered {}", start.status);
    }
    let csrf = client
        .cookies
        .get(super::auth::CSRF_COOKIE)
        .cloned()
        .context("the server set no CSRF cookie")?;
    let named = client.post_form("/name", &[("csrf", &csrf), ("name", &annotator.name)])?;
    if named.status != 303 {
        bail!("POST /name answered {}: {}", named.status, named.body);
    }
    let mut rng = Rng::new(seed);
    for _ in 0..config.judgements_per_annotator {
        let next = client.get("/api/arena/next")?;
        if next.status == 204 {
            break;
        }
        if next.status != 200 {
            bail!("GET /api/arena/next answered {}", next.status);
        }
        let task: serde_json::Value =
            serde_json::from_str(&next.body).context("the next task is not JSON")?;
        let s = |path: &[&str]| -> String {
            let mut v = &task;
            for p in path {
                v = &v[*p];
            }
            v.as_str().unwrap_or_default().to_string()
        };
        let (prompt_id, prompt_text) = (s(&["prompt_id"]), s(&["prompt"]));
        let fallback;
        let prompt = match prompts.get(prompt_id.as_str()) {
            Some(p) => *p,
            None => {
                fallback = Prompt::new(
                    &prompt_id,
                    &prompt_text,
                    PromptKind::Advice {
                        topic: String::new(),
                    },
                );
                &fallback
            }
        };
        let (sa, ta) = (s(&["a", "system"]), s(&["a", "text"]));
        let (sb, tb) = (s(&["b", "system"]), s(&["b", "text"]));
        let choice = match annotator.compare_turns(prompt, (&sa, &ta), (&sb, &tb), &mut rng) {
            Winner::A => "a",
            Winner::B => "b",
            Winner::Tie => "tie",
        };
        let id = s(&["submission_id"]);
        let fields = [
            ("csrf", csrf.as_str()),
            ("submission_id", id.as_str()),
            ("prompt_id", prompt_id.as_str()),
            ("a", &s(&["a", "key"])),
            ("b", &s(&["b", "key"])),
            ("choice", choice),
            ("reason", ""),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let t0 = Instant::now();
        let posted = client.post_form("/arena", &fields)?;
        let latency = t0.elapsed();
        if posted.status != 303 {
            bail!("POST /arena answered {}: {}", posted.status, posted.body);
        }
        acked.push(Acknowledged {
            submission_id: id,
            annotator: annotator.name.clone(),
            latency,
        });
    }
    Ok(())
}
