//! HTTP integration tests of the labelling server (`rlhf_lab::label`): every
//! route, with good and bad input, against a real server on a free port.
#![cfg(feature = "label")]

mod common;

use common::{assert_clear_error, rlhf_lab, scratch};
use rlhf_lab::feedback::records::{parse_feedback, Feedback, PreferencePair};
use rlhf_lab::label::client::{HttpClient, HttpResponse};
use rlhf_lab::label::db::LabelDb;
use rlhf_lab::label::{serve_in_background, ServerConfig, ServerHandle};
use std::path::{Path, PathBuf};

const SCRIPT: &str = "<script>alert('pwned')</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";

/// Two prompts with three answers each, one answer and one system name hostile.
fn write_items(dir: &Path) -> PathBuf {
    let mut lines = Vec::new();
    for p in ["p1", "p2"] {
        for (system, text) in [
            ("expert", format!("A careful answer to {p}.")),
            ("rude", format!("Obviously, dummy. {SCRIPT}")),
            ("evil<b>", format!("Click here {IMG}")),
        ] {
            lines.push(
                serde_json::json!({
                    "prompt_id": p, "prompt": format!("Question {p}? {SCRIPT}"),
                    "system": system, "text": text,
                })
                .to_string(),
            );
        }
    }
    let path = dir.join("items.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

struct Fixture {
    server: ServerHandle,
    dir: PathBuf,
}

fn start(name: &str, token: Option<&str>) -> Fixture {
    let dir = scratch(name);
    let mut config = ServerConfig::new(write_items(&dir), dir.join("labels.sqlite"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.token = token.map(str::to_string);
    config.body_limit = 4096;
    Fixture {
        server: serve_in_background(&config).unwrap(),
        dir,
    }
}

/// A client that loaded the start page (CSRF cookie) and chose `name`.
fn named_client(f: &Fixture, name: &str) -> (HttpClient, String) {
    let mut c = HttpClient::new(&f.server.url).unwrap();
    assert_eq!(c.get("/").unwrap().status, 200);
    let csrf = c.cookies["rlhf_label_csrf"].clone();
    let r = c
        .post_form("/name", &[("csrf", &csrf), ("name", name)])
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/arena"));
    (c, csrf)
}

/// The value of hidden field `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name}"))
        + marker.len();
    let end = start + page[start..].find('"').unwrap();
    page[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn arena_form<'a>(page: &'a str, csrf: &'a str, choice: &'a str) -> Vec<(&'static str, String)> {
    vec![
        ("csrf", csrf.to_string()),
        ("submission_id", hidden(page, "submission_id")),
        ("prompt_id", hidden(page, "prompt_id")),
        ("a", hidden(page, "a")),
        ("b", hidden(page, "b")),
        ("choice", choice.to_string()),
        ("reason", "clearer".to_string()),
    ]
}

fn post(c: &mut HttpClient, path: &str, fields: &[(&'static str, String)]) -> HttpResponse {
    let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    c.post_form(path, &f).unwrap()
}

fn with(fields: &[(&'static str, String)], key: &str, value: &str) -> Vec<(&'static str, String)> {
    fields
        .iter()
        .map(|(k, v)| {
            (
                *k,
                if *k == key {
                    value.to_string()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

fn without(fields: &[(&'static str, String)], key: &str) -> Vec<(&'static str, String)> {
    fields.iter().filter(|(k, _)| *k != key).cloned().collect()
}

fn assert_error(r: &HttpResponse, status: u16, words: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.body.contains(words), "body lacks {words:?}: {}", r.body);
}

#[test]
fn arena_stores_a_judgement_once_per_submission_id() {
    let f = start("arena", None);
    let (mut c, csrf) = named_client(&f, "Ada");
    let page = c.get("/arena").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains("labelling as <b>Ada</b>"));
    let form = arena_form(&page.body, &csrf, "a");
    let first = post(&mut c, "/arena", &form);
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.header("x-judgement"), Some("stored"));
    // A double click or a retry: the same submission id is stored once.
    let again = post(&mut c, "/arena", &form);
    assert_eq!(again.status, 303);
    assert_eq!(again.header("x-judgement"), Some("duplicate"));
    // The same id for another verdict is a conflict.
    assert_error(
        &post(&mut c, "/arena", &with(&form, "choice", "b")),
        409,
        "already used",
    );
    let db = LabelDb::open(&f.server.db).unwrap();
    let pairs = db.pairs().unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(
        (pairs[0].annotator.as_str(), pairs[0].reason.as_str()),
        ("Ada", "clearer")
    );
    // The next pair is a different one.
    let next = c.get("/arena").unwrap();
    let judged = (
        hidden(&page.body, "prompt_id"),
        hidden(&page.body, "a"),
        hidden(&page.body, "b"),
    );
    let offered = (
        hidden(&next.body, "prompt_id"),
        hidden(&next.body, "a"),
        hidden(&next.body, "b"),
    );
    let same = judged.0 == offered.0
        && ((judged.1 == offered.1 && judged.2 == offered.2)
            || (judged.1 == offered.2 && judged.2 == offered.1));
    assert!(!same, "the judged pair was offered again");
}

#[test]
fn the_left_answer_is_chosen_at_random() {
    let f = start("order", None);
    let (mut c, _) = named_client(&f, "Ola");
    let mut lefts = std::collections::BTreeSet::new();
    // The same next pair, 40 times: both orders appear (all one way: 2^-39).
    for _ in 0..40 {
        let page = c.get("/arena").unwrap().body;
        lefts.insert(hidden(&page, "a"));
    }
    assert_eq!(lefts.len(), 2, "{lefts:?}");
}

#[test]
fn every_pair_then_a_thank_you_and_pairs_balanced_across_prompts() {
    let f = start("balance", None);
    let (mut c, csrf) = named_client(&f, "Bo");
    let mut prompts = Vec::new();
    for _ in 0..6 {
        let page = c.get("/arena").unwrap();
        prompts.push(hidden(&page.body, "prompt_id"));
        assert_eq!(
            post(&mut c, "/arena", &arena_form(&page.body, &csrf, "tie")).status,
            303
        );
    }
    // Two prompts × three pairs: the first two pairs are of different prompts.
    assert_ne!(prompts[0], prompts[1]);
    let done = c.get("/arena").unwrap();
    assert!(
        done.body.contains("You have judged every pair (6)"),
        "{}",
        done.body
    );
}

#[test]
fn bad_requests_get_a_4xx_with_a_message() {
    let f = start("bad", None);
    let (mut c, csrf) = named_client(&f, "Cy");
    let page = c.get("/arena").unwrap().body;
    let form = arena_form(&page, &csrf, "a");
    assert_error(
        &post(&mut c, "/arena", &with(&form, "prompt_id", "nope")),
        404,
        "unknown item: no prompt `nope`",
    );
    assert_error(
        &post(&mut c, "/arena", &with(&form, "a", "ghost")),
        404,
        "has no answer `ghost`",
    );
    let b = hidden(&page, "b");
    assert_error(
        &post(&mut c, "/arena", &with(&form, "a", &b)),
        400,
        "same answer",
    );
    assert_error(
        &post(&mut c, "/arena", &with(&form, "choice", "maybe")),
        400,
        "field `choice` is `maybe`",
    );
    assert_error(
        &post(&mut c, "/arena", &without(&form, "choice")),
        400,
        "field `choice` is missing",
    );
    assert_error(
        &post(&mut c, "/arena", &with(&form, "submission_id", "x")),
        400,
        "submission_id",
    );
    assert_error(
        &post(&mut c, "/arena", &with(&form, "reason", &"r".repeat(2001))),
        400,
        "longer than 2000",
    );
    // CSRF: missing field, wrong value, no cookie.
    assert_error(
        &post(&mut c, "/arena", &without(&form, "csrf")),
        403,
        "missing CSRF token",
    );
    assert_error(
        &post(
            &mut c,
            "/arena",
            &with(&form, "csrf", "0123456789abcdef0123456789abcdef"),
        ),
        403,
        "does not match",
    );
    let mut stranger = HttpClient::new(&f.server.url).unwrap();
    assert_error(&post(&mut stranger, "/arena", &form), 403, "no CSRF cookie");
    assert_error(
        &post(
            &mut stranger,
            "/name",
            &[("csrf", csrf.clone()), ("name", "x".into())],
        ),
        403,
        "CSRF",
    );
    // No name chosen yet.
    let mut anon = HttpClient::new(&f.server.url).unwrap();
    anon.get("/").unwrap();
    let anon_csrf = anon.cookies["rlhf_label_csrf"].clone();
    assert_error(
        &post(&mut anon, "/arena", &with(&form, "csrf", &anon_csrf)),
        400,
        "no annotator name",
    );
    assert_error(
        &post(
            &mut anon,
            "/name",
            &[("csrf", anon_csrf.clone()), ("name", "a;b".into())],
        ),
        400,
        "field `name` contains `;`",
    );
    assert_error(
        &anon.get("/api/arena/next").unwrap(),
        400,
        "no annotator name",
    );
    // Malformed bodies: not a form, not URL-encoded, too big.
    let r = c
        .request("POST", "/arena", Some("application/json"), b"{}")
        .unwrap();
    assert_eq!(r.status, 415, "{}", r.body);
    assert!(r.body.contains("malformed form"), "{}", r.body);
    let r = c
        .request(
            "POST",
            "/arena",
            Some("application/x-www-form-urlencoded"),
            b"csrf=%zz&&=",
        )
        .unwrap();
    assert!(
        r.status == 400 || r.status == 422 || r.status == 403,
        "{}: {}",
        r.status,
        r.body
    );
    let big = format!("csrf={csrf}&reason={}", "x".repeat(10_000));
    let r = c
        .request(
            "POST",
            "/arena",
            Some("application/x-www-form-urlencoded"),
            big.as_bytes(),
        )
        .unwrap();
    assert_error(&r, 413, "malformed form");
    // Unknown page and wrong method.
    assert_error(&c.get("/no/such/page").unwrap(), 404, "no such page");
    assert_eq!(
        c.request("DELETE", "/arena", None, b"").unwrap().status,
        405
    );
    // Nothing was stored by any of these.
    assert!(LabelDb::open(&f.server.db)
        .unwrap()
        .pairs()
        .unwrap()
        .is_empty());
}

#[test]
fn single_answer_page_stores_thumbs_rating_and_flaws() {
    let f = start("single", None);
    let (mut c, csrf) = named_client(&f, "Di");
    let page = c.get("/single").unwrap().body;
    assert!(page.contains("name=\"thumbs\" value=\"up\"") && page.contains("value=\"too_long\""));
    let form = vec![
        ("csrf", csrf.clone()),
        ("submission_id", hidden(&page, "submission_id")),
        ("prompt_id", hidden(&page, "prompt_id")),
        ("answer", hidden(&page, "answer")),
        ("thumbs", "down".to_string()),
        ("rating", "3".to_string()),
        ("flaw", "rude".to_string()),
        ("flaw", "too_long".to_string()),
    ];
    assert_error(
        &post(&mut c, "/single", &with(&form, "rating", "11")),
        400,
        "field `rating` is `11`",
    );
    assert_error(
        &post(&mut c, "/single", &with(&form, "flaw", "ugly")),
        400,
        "field `flaw` is `ugly`",
    );
    assert_error(
        &post(&mut c, "/single", &with(&form, "thumbs", "sideways")),
        400,
        "field `thumbs`",
    );
    assert_error(
        &post(&mut c, "/single", &with(&form, "answer", "ghost")),
        404,
        "unknown item",
    );
    assert_error(
        &post(&mut c, "/single", &without(&form, "csrf")),
        403,
        "CSRF",
    );
    let r = post(&mut c, "/single", &form);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/single")),
        "{}",
        r.body
    );
    assert_eq!(
        post(&mut c, "/single", &form).header("x-judgement"),
        Some("duplicate")
    );
    let unrated = vec![
        ("csrf", csrf.clone()),
        ("submission_id", "second-submission".to_string()),
        ("prompt_id", "p2".to_string()),
        ("answer", "expert".to_string()),
        ("thumbs", "up".to_string()),
        ("rating", String::new()),
    ];
    assert_eq!(post(&mut c, "/single", &unrated).status, 303);
    let export = c.get("/export/records.jsonl").unwrap();
    assert_eq!(export.status, 200);
    assert!(export
        .header("content-disposition")
        .unwrap()
        .contains("records.jsonl"));
    let records = parse_feedback(&export.body, "export").unwrap();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            Feedback::Comparison(_) => "comparison",
            Feedback::Thumbs(_) => "thumbs",
            Feedback::Rating(_) => "rating",
            Feedback::Checklist(_) => "checklist",
        })
        .collect();
    assert_eq!(
        kinds,
        ["thumbs", "rating", "checklist", "thumbs", "checklist"]
    );
    match &records[2] {
        Feedback::Checklist(c) => assert_eq!(c.flaws.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn item_text_is_escaped_everywhere_it_is_shown() {
    let f = start("xss", None);
    let (mut c, csrf) = named_client(&f, "Eve");
    let mut pages = Vec::new();
    for _ in 0..3 {
        let page = c.get("/arena").unwrap();
        assert_eq!(
            post(&mut c, "/arena", &arena_form(&page.body, &csrf, "b")).status,
            303
        );
        pages.push(page.body);
    }
    pages.push(c.get("/single").unwrap().body);
    pages.push(c.get("/leaderboard").unwrap().body);
    // An unknown item's id is echoed in the error: escaped too.
    let form = arena_form(&pages[0], &csrf, "a");
    pages.push(post(&mut c, "/arena", &with(&form, "prompt_id", SCRIPT)).body);
    let all = pages.concat();
    assert!(all.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    assert!(all.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(
        pages[4].contains("evil&lt;b&gt;"),
        "system names are escaped on the leaderboard"
    );
    for p in &pages {
        assert!(!p.contains("<script>alert"), "raw script in {p}");
        assert!(!p.contains("<img src=x"), "raw img in {p}");
        assert!(!p.contains("<b>Obviously"));
        // The only script is the page's own, tagged with the CSP nonce.
        assert_eq!(p.matches("<script").count(), 1, "{p}");
        assert!(p.contains("<script nonce=\""));
    }
    let r = c.get("/arena").unwrap();
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'nonce-") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let svg = c.get("/leaderboard.svg").unwrap();
    assert!(
        !svg.body.contains("<script") && !svg.body.contains("<b>"),
        "{}",
        svg.body
    );
}

#[test]
fn leaderboard_and_exports_follow_the_votes() {
    let f = start("board", None);
    let mut c = HttpClient::new(&f.server.url).unwrap();
    let empty = c.get("/leaderboard").unwrap();
    assert_eq!(empty.status, 200);
    assert!(empty
        .body
        .contains("No comparison between named systems yet"));
    assert_error(&c.get("/leaderboard.svg").unwrap(), 404, "no ratings yet");
    for name in ["Fay", "Gus", "Hal"] {
        let (mut c, csrf) = named_client(&f, name);
        for _ in 0..6 {
            let page = c.get("/arena").unwrap().body;
            // Everyone prefers the expert, else A.
            let a = hidden(&page, "a");
            let b = hidden(&page, "b");
            let choice = if b == "expert" {
                "b"
            } else if a == "expert" || name != "Hal" {
                "a"
            } else {
                "both_bad"
            };
            assert_eq!(
                post(&mut c, "/arena", &arena_form(&page, &csrf, choice)).status,
                303
            );
        }
    }
    let board = c.get("/leaderboard").unwrap();
    assert!(
        board.body.contains("18 pair judgements by 3 annotators"),
        "{}",
        board.body
    );
    assert!(board.body.contains("<table id=\"ratings\">"));
    assert!(board.body.contains("Fleiss"));
    assert!(board.body.contains("http-equiv=\"refresh\""));
    let first_row = board.body.split("<tr><td>").nth(1).unwrap();
    assert!(
        first_row.starts_with("expert<"),
        "expert leads: {first_row}"
    );
    let svg = c.get("/leaderboard.svg").unwrap();
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    assert!(svg.body.contains("<svg") && svg.body.contains("Bradley-Terry"));
    let trl = c.get("/export/trl.jsonl").unwrap();
    assert_eq!(trl.status, 200);
    let pairs: Vec<PreferencePair> = trl
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let records = parse_feedback(&c.get("/export/records.jsonl").unwrap().body, "r").unwrap();
    assert_eq!(records.len(), 18);
    let decided = records
        .iter()
        .filter(|r| matches!(r, Feedback::Comparison(c) if c.chosen_rejected().is_some()))
        .count();
    assert_eq!(pairs.len(), decided);
    assert!(
        decided < 18,
        "both-bad verdicts are ties, left out of TRL pairs"
    );
}

#[test]
fn a_token_is_required_when_set_and_non_loopback_needs_one() {
    let f = start("token", Some("s3cret-token"));
    let mut c = HttpClient::new(&f.server.url).unwrap();
    assert_error(&c.get("/").unwrap(), 401, "needs a token");
    assert_error(&c.get("/?token=wrong-token").unwrap(), 401, "wrong token");
    assert_error(&c.get("/export/records.jsonl").unwrap(), 401, "token");
    assert!(f.server.link.ends_with("/?token=s3cret-token"));
    let ok = c.get("/?token=s3cret-token").unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(c.cookies["rlhf_label_token"], "s3cret-token");
    // The cookie now carries it.
    assert_eq!(c.get("/leaderboard").unwrap().status, 200);
    c.cookies
        .insert("rlhf_label_token".into(), "guessed-wrong".into());
    assert_error(&c.get("/arena").unwrap(), 401, "wrong token");
    // Any non-loopback address needs a token, and short tokens are refused.
    let dir = &f.dir;
    let mut open = ServerConfig::new(dir.join("items.jsonl"), dir.join("other.sqlite"));
    open.bind = "0.0.0.0:0".parse().unwrap();
    let e = serve_in_background(&open).unwrap_err().to_string();
    assert!(
        e.contains("not a loopback address") && e.contains("--token"),
        "{e}"
    );
    open.token = Some("long-enough-token".into());
    open.overlap = 0;
    assert!(serve_in_background(&open)
        .unwrap_err()
        .to_string()
        .contains("--overlap is 0"));
    open.overlap = 1;
    open.token = Some("short".into());
    assert!(serve_in_background(&open)
        .unwrap_err()
        .to_string()
        .contains("at least 8"));
    let out = rlhf_lab(&[
        "label",
        "serve",
        "--items",
        dir.join("items.jsonl").to_str().unwrap(),
        "--db",
        dir.join("cli.sqlite").to_str().unwrap(),
        "--bind",
        "0.0.0.0:0",
    ]);
    assert_clear_error(&out, &["not a loopback address", "--token"]);
}

#[test]
fn bad_items_files_and_databases_are_clear_errors() {
    let dir = scratch("items");
    let items = dir.join("items.jsonl");
    std::fs::write(
        &items,
        "{\"prompt_id\":\"p\",\"prompt\":\"q\",\"system\":\"s\",\"text\":\"t\"}\n{\"oops\":1}\n",
    )
    .unwrap();
    let out = rlhf_lab(&[
        "label",
        "serve",
        "--items",
        items.to_str().unwrap(),
        "--db",
        dir.join("l.sqlite").to_str().unwrap(),
    ]);
    assert_clear_error(&out, &["items.jsonl:2: bad answer"]);
    let not_db = dir.join("not.sqlite");
    std::fs::write(
        &not_db,
        "this is not a database, just text that is long enough to matter",
    )
    .unwrap();
    let out = rlhf_lab(&[
        "label",
        "export",
        "--db",
        not_db.to_str().unwrap(),
        "--out",
        dir.join("o").to_str().unwrap(),
    ]);
    assert_clear_error(&out, &["not.sqlite"]);
    let out = rlhf_lab(&[
        "label",
        "export",
        "--db",
        dir.join("missing.sqlite").to_str().unwrap(),
        "--out",
        dir.join("o").to_str().unwrap(),
    ]);
    assert_clear_error(&out, &["missing.sqlite: no such database"]);
}
