//! The HTML pages, rendered on the server as strings. Every value from outside
//! (item texts, names, reasons, messages) passes through [`html`]; the only
//! script is a few lines that disable a form's buttons once it is sent (a
//! double click then sends one request; a retry resends the same
//! `submission_id`, which the database stores once).

use super::escape::html;
use super::leaderboard::Leaderboard;
use crate::feedback::records::Flaw;

/// One answer as a page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerView {
    /// The answer's key (hidden field; systems are not shown, to avoid bias).
    pub key: String,
    pub text: String,
}

/// A pair to judge: `left` is answer A, `right` answer B.
#[derive(Debug, Clone, PartialEq)]
pub struct ArenaTask {
    pub prompt_id: String,
    pub prompt: String,
    pub left: AnswerView,
    pub right: AnswerView,
    pub submission_id: String,
}

/// A single answer to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleTask {
    pub prompt_id: String,
    pub prompt: String,
    pub answer: AnswerView,
    pub submission_id: String,
}

/// What every page needs: the annotator (if named), the CSRF token its forms
/// carry, and the nonce that lets its one script run under the CSP.
#[derive(Debug, Clone, PartialEq)]
pub struct PageContext {
    pub annotator: Option<String>,
    pub csrf: String,
    pub nonce: String,
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2433}
header{background:#1d2433;color:#fff;padding:.6em 1.2em;display:flex;gap:1.4em;align-items:center}
header a{color:#cfe3ff;text-decoration:none}header .who{margin-left:auto;color:#ddd}
main{max-width:1100px;margin:1.2em auto;padding:0 1em}
.prompt{background:#fff;border-left:4px solid #3b6fd8;padding:.8em 1em;white-space:pre-wrap}
.answers{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:1em 0}
.answer{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:.8em 1em}
.answer h3{margin:.1em 0 .5em}.answer .text{white-space:pre-wrap;overflow-wrap:anywhere}
.buttons{display:flex;gap:.6em;flex-wrap:wrap;margin:.8em 0}
button{font-size:1.05em;padding:.5em 1.2em;border-radius:5px;border:1px solid #8a94a6;background:#fff;cursor:pointer}
button.primary{background:#3b6fd8;color:#fff;border-color:#3b6fd8}
textarea{width:100%;min-height:3em}
table{border-collapse:collapse;background:#fff;margin:.8em 0}
td,th{border:1px solid #d5d9e0;padding:.3em .7em;text-align:right}td:first-child,th:first-child{text-align:left}
.error{background:#fde8e8;border-left:4px solid #c0392b;padding:.8em 1em}
.muted{color:#687387}fieldset{background:#fff;border:1px solid #d5d9e0;margin:.8em 0}
";

/// A whole page around `body`; `refresh` reloads it every so many seconds.
pub fn layout(ctx: &PageContext, title: &str, body: &str, refresh: Option<u32>) -> String {
    let who = match &ctx.annotator {
        Some(name) => format!("labelling as <b>{}</b>", html(name)),
        None => "not signed in".to_string(),
    };
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title} · rlhf-lab labelling</title><style>{STYLE}</style></head>\n<body>\
         <header><b>rlhf-lab labelling</b><a href=\"/arena\">Arena</a><a href=\"/single\">Single answer</a>\
         <a href=\"/leaderboard\">Leaderboard</a><a href=\"/\">Name</a><span class=\"who\">{who}</span></header>\n\
         <main><h1>{title}</h1>\n{body}</main>\n\
         <script nonce=\"{nonce}\">for(const f of document.querySelectorAll('form.judge'))\
         f.addEventListener('submit',()=>setTimeout(()=>{{for(const b of f.querySelectorAll('button'))b.disabled=true}},0));</script>\
         </body></html>\n",
        title = html(title),
        nonce = html(&ctx.nonce),
    )
}

/// An answer's text as shown: without the end-of-turn marker a chat turn may end in.
fn shown(text: &str) -> String {
    html(text.strip_suffix("<|im_end|>").unwrap_or(text))
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        html(name),
        html(value)
    )
}

/// The name form (no passwords: a name identifies an annotator's votes).
pub fn index_page(ctx: &PageContext, judgements: usize) -> String {
    let current = ctx.annotator.as_deref().unwrap_or("");
    let body = format!(
        "<p>Judge answers of language models: compare two answers in the <a href=\"/arena\">arena</a>, \
         or rate <a href=\"/single\">one answer</a>. {judgements} judgements so far.</p>\
         <form method=\"post\" action=\"/name\">{csrf}<label>Your name \
         <input name=\"name\" maxlength=\"40\" required value=\"{current}\"></label> \
         <button class=\"primary\">Start labelling</button></form>\
         <p class=\"muted\">Export: <a href=\"/export/records.jsonl\">feedback records (JSONL)</a> · \
         <a href=\"/export/trl.jsonl\">TRL prompt/chosen/rejected (JSONL)</a></p>",
        csrf = hidden("csrf", &ctx.csrf),
        current = html(current),
    );
    layout(ctx, "Who is labelling?", &body, None)
}

/// The arena: the prompt, answers A and B side by side, four verdicts and a reason.
pub fn arena_page(ctx: &PageContext, task: Option<&ArenaTask>, done: usize) -> String {
    let Some(t) = task else {
        let body = format!(
            "<p>You have judged every pair ({done}). Thank you! See the <a href=\"/leaderboard\">leaderboard</a>.</p>"
        );
        return layout(ctx, "Arena", &body, None);
    };
    let body = format!(
        "<p class=\"muted\">Which answer is better? ({done} judged so far)</p>\
         <div class=\"prompt\" id=\"prompt\">{prompt}</div>\
         <form class=\"judge\" method=\"post\" action=\"/arena\">{fields}\
         <div class=\"answers\"><div class=\"answer\" id=\"answer-a\"><h3>A</h3><div class=\"text\">{a}</div></div>\
         <div class=\"answer\" id=\"answer-b\"><h3>B</h3><div class=\"text\">{b}</div></div></div>\
         <label>Reason (optional)<br><textarea name=\"reason\" maxlength=\"2000\"></textarea></label>\
         <div class=\"buttons\"><button class=\"primary\" name=\"choice\" value=\"a\" id=\"choose-a\">A is better</button>\
         <button class=\"primary\" name=\"choice\" value=\"b\" id=\"choose-b\">B is better</button>\
         <button name=\"choice\" value=\"tie\" id=\"choose-tie\">Tie</button>\
         <button name=\"choice\" value=\"both_bad\" id=\"choose-both-bad\">Both bad</button></div></form>",
        prompt = html(&t.prompt),
        a = shown(&t.left.text),
        b = shown(&t.right.text),
        fields = [
            hidden("csrf", &ctx.csrf),
            hidden("submission_id", &t.submission_id),
            hidden("prompt_id", &t.prompt_id),
            hidden("a", &t.left.key),
            hidden("b", &t.right.key),
        ]
        .concat(),
    );
    layout(ctx, "Arena", &body, None)
}

/// A flaw's label on the checklist.
fn flaw_label(f: Flaw) -> &'static str {
    match f {
        Flaw::Incorrect => "incorrect",
        Flaw::Unhelpful => "unhelpful",
        Flaw::Harmful => "harmful",
        Flaw::Rude => "rude",
        Flaw::TooLong => "too long",
    }
}

/// One answer: thumbs up / down, a 1–10 rating and the flaw checklist.
pub fn single_page(ctx: &PageContext, task: Option<&SingleTask>) -> String {
    let Some(t) = task else {
        return layout(
            ctx,
            "Single answer",
            "<p>You have judged every answer. Thank you!</p>",
            None,
        );
    };
    let options: String = std::iter::once("<option value=\"\">not rated</option>".to_string())
        .chain((1..=10).map(|i| format!("<option value=\"{i}\">{i}</option>")))
        .collect();
    let flaws: String = Flaw::ALL
        .iter()
        .map(|f| {
            let name = f.name();
            format!(
                "<label><input type=\"checkbox\" name=\"flaw\" value=\"{name}\"> {}</label> ",
                flaw_label(*f)
            )
        })
        .collect();
    let body = format!(
        "<div class=\"prompt\" id=\"prompt\">{prompt}</div>\
         <form class=\"judge\" method=\"post\" action=\"/single\">{fields}\
         <div class=\"answers\" style=\"grid-template-columns:1fr\"><div class=\"answer\" id=\"answer\">\
         <div class=\"text\">{text}</div></div></div>\
         <fieldset><legend>Flaws</legend>{flaws}</fieldset>\
         <label>Rating, 1 (worst) to 10 (best): <select name=\"rating\">{options}</select></label>\
         <div class=\"buttons\"><button class=\"primary\" name=\"thumbs\" value=\"up\" id=\"thumbs-up\">Thumbs up: good</button>\
         <button name=\"thumbs\" value=\"down\" id=\"thumbs-down\">Thumbs down: bad</button></div></form>",
        prompt = html(&t.prompt),
        text = shown(&t.answer.text),
        fields = [
            hidden("csrf", &ctx.csrf),
            hidden("submission_id", &t.submission_id),
            hidden("prompt_id", &t.prompt_id),
            hidden("answer", &t.answer.key),
        ]
        .concat(),
    );
    layout(ctx, "Single answer", &body, None)
}

fn interval(i: &crate::feedback::ranking::Interval) -> String {
    format!("{:.0} – {:.0}", i.lo, i.hi)
}

/// The leaderboard (reloads every 15 s as votes arrive). `version` changes the
/// figure's URL when the votes change, so browsers do not show a stale one.
pub fn leaderboard_page(ctx: &PageContext, board: &Leaderboard, version: usize) -> String {
    let mut body = format!(
        "<p>{} pair judgements by {} annotators. Ratings on the Elo scale; intervals are 95% bootstrap \
         percentiles. <a href=\"/export/records.jsonl\">Records</a> · <a href=\"/export/trl.jsonl\">TRL pairs</a></p>",
        board.judgements, board.annotators
    );
    if board.rows.is_empty() {
        body.push_str("<p class=\"muted\">No comparison between named systems yet.</p>");
    } else {
        body.push_str(&format!(
            "<img id=\"figure\" style=\"max-width:100%\" alt=\"ratings with intervals\" src=\"/leaderboard.svg?v={version}\">"
        ));
        body.push_str(
            "<table id=\"ratings\"><tr><th>system</th><th>Bradley–Terry</th><th>95%</th><th>Elo</th><th>95%</th><th>matches</th></tr>",
        );
        for r in &board.rows {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
                html(&r.system),
                r.bradley_terry,
                interval(&r.bt_interval),
                r.elo,
                interval(&r.elo_interval),
                r.matches
            ));
        }
        body.push_str("</table>");
    }
    body.push_str("<h2>Agreement</h2>");
    match board.fleiss_kappa {
        Some(k) => body.push_str(&format!(
            "<p>Fleiss' κ over pairs judged by several annotators: <b>{k:.2}</b></p>"
        )),
        None => body
            .push_str("<p class=\"muted\">Fleiss' κ needs pairs judged by several annotators.</p>"),
    }
    if !board.consensus.is_empty() {
        body.push_str("<table id=\"agreement\"><tr><th>annotator</th><th>agrees with the others' majority</th><th>items</th></tr>");
        for c in &board.consensus {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{:.0}%</td><td>{}</td></tr>",
                html(&c.annotator),
                100.0 * c.agreement,
                c.items
            ));
        }
        body.push_str("</table>");
    }
    layout(ctx, "Leaderboard", &body, Some(15))
}

/// An error page: the status line's reason and what was wrong.
pub fn error_page(ctx: &PageContext, title: &str, message: &str) -> String {
    layout(
        ctx,
        title,
        &format!(
            "<div class=\"error\" id=\"error\">{}</div><p><a href=\"/\">Back to the start</a></p>",
            html(message)
        ),
        None,
    )
}
