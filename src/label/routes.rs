//! The HTTP routes (axum) and their checks. Every request first passes
//! [`guard`] (the shared secret when one is set; security headers). A form
//! must repeat the CSRF cookie in its `csrf` field; bodies are limited in
//! size; any bad request gets a 4xx page saying what was wrong, never a panic.
//! A judgement is committed to the database before the answer is sent.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the name form |
//! | `POST /name` | set the annotator's name (cookie) |
//! | `GET /arena`, `POST /arena` | a pair of answers; store a verdict |
//! | `GET /single`, `POST /single` | one answer; store thumbs, rating and flaws |
//! | `GET /leaderboard`, `GET /leaderboard.svg` | ratings, intervals, agreement |
//! | `GET /export/records.jsonl`, `GET /export/trl.jsonl` | the judgements as files |
//! | `GET /api/arena/next`, `GET /api/single/next` | the next task as JSON (simulated annotators) |

use super::auth::{self, ANNOTATOR_COOKIE, CSRF_COOKIE, TOKEN_COOKIE};
use super::db::{self, Choice, LabelDb, PairJudgement, SingleJudgement, Stored};
use super::escape::{url_component, url_decode};
use super::export;
use super::items::Catalogue;
use super::leaderboard::{self, Leaderboard};
use super::pages::{self, AnswerView, ArenaTask, PageContext, SingleTask};
use super::schedule::Scheduler;
use crate::feedback::records::Flaw;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Everything the handlers share.
pub struct AppState {
    pub catalogue: Catalogue,
    pub db: Mutex<LabelDb>,
    pub scheduler: Mutex<Scheduler>,
    /// The shared secret every request must carry, when set.
    pub token: Option<String>,
    /// Pair judgements stored (the leaderboard's version).
    pub pair_count: AtomicUsize,
    /// The leaderboard and its SVG at a pair count.
    board: Mutex<Option<CachedBoard>>,
}

struct CachedBoard {
    version: usize,
    board: Leaderboard,
    svg: Option<String>,
}

/// A lock that a panicking thread poisoned is still usable here: every
/// update the state sees is a complete one (counts, a committed row).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AppState {
    /// State over `catalogue` and `db`, the scheduler (each pair for
    /// `overlap` annotators) rebuilt from the judgements already stored.
    pub fn new(
        catalogue: Catalogue,
        db: LabelDb,
        token: Option<String>,
        overlap: u32,
    ) -> anyhow::Result<Self> {
        let mut scheduler = Scheduler::new(&catalogue, overlap);
        let pairs = db.pairs()?;
        for p in &pairs {
            if let (Some(a), Some(b)) = (
                catalogue.answer(&p.prompt_id, &p.key_a),
                catalogue.answer(&p.prompt_id, &p.key_b),
            ) {
                if let Some(i) = scheduler.pair_index(a.prompt, a.answer, b.answer) {
                    scheduler.record_pair(&catalogue, &p.annotator, i);
                }
            }
        }
        for s in db.singles()? {
            if let Some(r) = catalogue.answer(&s.prompt_id, &s.key) {
                if let Some(i) = scheduler.single_index(r.prompt, r.answer) {
                    scheduler.record_single(&s.annotator, i);
                }
            }
        }
        Ok(Self {
            catalogue,
            db: Mutex::new(db),
            scheduler: Mutex::new(scheduler),
            token,
            pair_count: AtomicUsize::new(pairs.len()),
            board: Mutex::new(None),
        })
    }
}

/// The per-request nonce that lets a page's one inline script run under the CSP.
#[derive(Debug, Clone)]
struct Nonce(String);

/// The router: every route, the body limit, the guard.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/name", post(set_name))
        .route("/arena", get(arena).post(post_arena))
        .route("/single", get(single).post(post_single))
        .route("/leaderboard", get(leaderboard_page))
        .route("/leaderboard.svg", get(leaderboard_svg))
        .route("/export/records.jsonl", get(export_records))
        .route("/export/trl.jsonl", get(export_trl))
        .route("/api/arena/next", get(api_arena_next))
        .route("/api/single/next", get(api_single_next))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// The value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| url_decode(v))
    })
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name).map(url_decode))
}

/// The shared secret (from `?token=` or its cookie; a URL token is kept in a
/// cookie), and security headers on every response: a CSP allowing only this
/// page's nonce-tagged script, no sniffing, no framing, no referrer (the
/// token may be in the URL).
async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let nonce = auth::random_hex(16);
    let mut set_token = None;
    if let Some(expected) = &state.token {
        let from_url = req.uri().query().and_then(|q| query_param(q, "token"));
        let from_cookie = cookie_value(req.headers(), TOKEN_COOKIE);
        let ok = |t: &Option<String>| {
            t.as_deref()
                .is_some_and(|t| auth::constant_time_eq(t, expected))
        };
        if ok(&from_url) {
            set_token = Some(auth::set_cookie(TOKEN_COOKIE, &url_component(expected)));
        } else if !ok(&from_cookie) {
            let message = if from_url.is_some() || from_cookie.is_some() {
                "wrong token: this server needs the shared secret it was started with (--token)"
            } else {
                "this server needs a token: open the link it printed at start (…/?token=SECRET)"
            };
            return (StatusCode::UNAUTHORIZED, plain_page(message)).into_response();
        }
    }
    req.extensions_mut().insert(Nonce(nonce.clone()));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Some(c) = set_token.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.append(header::SET_COOKIE, c);
    }
    let csp = format!(
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// An error page for requests that fail before a page context exists.
fn plain_page(message: &str) -> axum::response::Html<String> {
    let ctx = PageContext {
        annotator: None,
        csrf: String::new(),
        nonce: String::new(),
    };
    axum::response::Html(pages::error_page(&ctx, "Not allowed", message))
}

/// The page context of a request, and the CSRF cookie to set when it had none.
fn context(headers: &HeaderMap, nonce: &Nonce) -> (PageContext, Option<String>) {
    let existing = cookie_value(headers, CSRF_COOKIE)
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let (csrf, set) = match existing {
        Some(c) => (c, None),
        None => {
            let c = auth::random_hex(16);
            let set = auth::set_cookie(CSRF_COOKIE, &c);
            (c, Some(set))
        }
    };
    let annotator =
        cookie_value(headers, ANNOTATOR_COOKIE).filter(|n| auth::check_annotator_name(n).is_ok());
    (
        PageContext {
            annotator,
            csrf,
            nonce: nonce.0.clone(),
        },
        set,
    )
}

/// A response with `status`, `body`, and the cookies to set.
fn respond(status: StatusCode, cookies: &[String], body: impl IntoResponse) -> Response {
    let mut res = (status, body).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

fn html_page(cookie: Option<String>, page: String) -> Response {
    respond(
        StatusCode::OK,
        &cookie.into_iter().collect::<Vec<_>>(),
        axum::response::Html(page),
    )
}

/// A 4xx (or 5xx) page saying what was wrong.
fn fail(ctx: &PageContext, status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    (
        status,
        axum::response::Html(pages::error_page(ctx, title, message)),
    )
        .into_response()
}

/// 303 See Other to `to`, with a header saying what happened to the judgement.
fn see_other(to: &str, judgement: &'static str, cookies: &[String]) -> Response {
    let mut res = respond(StatusCode::SEE_OTHER, cookies, ());
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
    );
    h.insert("x-judgement", HeaderValue::from_static(judgement));
    res
}

async fn not_found(headers: HeaderMap, Extension(nonce): Extension<Nonce>) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    fail(&ctx, StatusCode::NOT_FOUND, "no such page")
}

/// A parsed form: its fields in order (a checkbox may repeat).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, String> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("field `{name}` is missing")),
        }
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The form of a POST, its CSRF token checked: a malformed body is 400 (or
/// 413 / 415 as axum says), a missing or wrong token 403.
#[allow(clippy::result_large_err)]
fn checked_form(
    ctx: &PageContext,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Fields, Response> {
    let fields = match form {
        Ok(Form(f)) => Fields(f),
        Err(rejection) => {
            let status = rejection.status();
            let message = format!("malformed form: {}", rejection.body_text());
            return Err(fail(ctx, status, &message));
        }
    };
    let cookie = cookie_value(headers, CSRF_COOKIE);
    match (fields.get("csrf"), cookie) {
        (None, _) | (Some(""), _) => Err(fail(
            ctx,
            StatusCode::FORBIDDEN,
            "missing CSRF token: send the form from one of this server's pages",
        )),
        (Some(_), None) => Err(fail(
            ctx,
            StatusCode::FORBIDDEN,
            "no CSRF cookie: load a page of this server first (cookies must be enabled)",
        )),
        (Some(field), Some(cookie)) if auth::constant_time_eq(field, &cookie) => Ok(fields),
        _ => Err(fail(
            ctx,
            StatusCode::FORBIDDEN,
            "CSRF token does not match: reload the page and try again",
        )),
    }
}

async fn index(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie) = context(&headers, &nonce);
    let n = state.pair_count.load(Ordering::Relaxed);
    html_page(cookie, pages::index_page(&ctx, n))
}

async fn set_name(
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    let fields = match checked_form(&ctx, &headers, form) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let name = fields.get("name").unwrap_or("").trim().to_string();
    if let Err(e) = auth::check_annotator_name(&name) {
        return fail(&ctx, StatusCode::BAD_REQUEST, &e);
    }
    let cookie = auth::set_cookie(ANNOTATOR_COOKIE, &url_component(&name));
    see_other("/arena", "none", &[cookie])
}

/// The annotator of a request that judges, or a 400 saying to choose a name.
#[allow(clippy::result_large_err)]
fn annotator(ctx: &PageContext) -> Result<String, Response> {
    ctx.annotator.clone().ok_or_else(|| {
        fail(
            ctx,
            StatusCode::BAD_REQUEST,
            "no annotator name: choose one on the start page first",
        )
    })
}

/// A judging request's checked form and who sent it.
struct Judging {
    fields: Fields,
    annotator: String,
}

/// [`checked_form`] (CSRF), then [`annotator`]: what every judging POST needs.
#[allow(clippy::result_large_err)]
fn judging_form(
    ctx: &PageContext,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Judging, Response> {
    let fields = checked_form(ctx, headers, form)?;
    Ok(Judging {
        fields,
        annotator: annotator(ctx)?,
    })
}

/// The next pair for `annotator`, in random left/right order.
fn next_arena_task(state: &AppState, annotator: &str) -> Option<ArenaTask> {
    let pair = lock(&state.scheduler).next_pair(&state.catalogue, annotator)?;
    let p = &state.catalogue.prompts[pair.prompt];
    let view = |i: usize| AnswerView {
        key: p.answers[i].key.clone(),
        text: p.answers[i].text.clone(),
    };
    let flip = auth::random_bool();
    let (left, right) = if flip {
        (pair.b, pair.a)
    } else {
        (pair.a, pair.b)
    };
    Some(ArenaTask {
        prompt_id: p.prompt_id.clone(),
        prompt: p.prompt.clone(),
        left: view(left),
        right: view(right),
        submission_id: auth::random_hex(16),
    })
}

fn next_single_task(state: &AppState, annotator: &str) -> Option<SingleTask> {
    let i = lock(&state.scheduler).next_single(annotator)?;
    let (p, a) = state.catalogue.get(state.catalogue.singles[i]);
    Some(SingleTask {
        prompt_id: p.prompt_id.clone(),
        prompt: p.prompt.clone(),
        answer: AnswerView {
            key: a.key.clone(),
            text: a.text.clone(),
        },
        submission_id: auth::random_hex(16),
    })
}

/// A judging page's context, the cookie to set and the annotator's name; the
/// sign-in page (as the `Err` response) when nobody is signed in.
#[allow(clippy::result_large_err)]
fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    nonce: &Nonce,
) -> Result<(PageContext, Option<String>, String), Response> {
    let (ctx, cookie) = context(headers, nonce);
    match ctx.annotator.clone() {
        Some(name) => Ok((ctx, cookie, name)),
        None => Err(html_page(
            cookie,
            pages::index_page(&ctx, state.pair_count.load(Ordering::Relaxed)),
        )),
    }
}

async fn arena(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie, name) = match signed_in(&state, &headers, &nonce) {
        Ok(signed_in) => signed_in,
        Err(index) => return index,
    };
    let task = next_arena_task(&state, &name);
    let done = lock(&state.scheduler).pairs_done(&name);
    html_page(cookie, pages::arena_page(&ctx, task.as_ref(), done))
}

async fn single(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie, name) = match signed_in(&state, &headers, &nonce) {
        Ok(signed_in) => signed_in,
        Err(index) => return index,
    };
    let task = next_single_task(&state, &name);
    html_page(cookie, pages::single_page(&ctx, task.as_ref()))
}

/// Look up answer `key` of prompt `prompt_id`: 404 naming what is unknown.
#[allow(clippy::result_large_err)]
fn find_answer(
    state: &AppState,
    ctx: &PageContext,
    prompt_id: &str,
    key: &str,
) -> Result<super::items::AnswerRef, Response> {
    if state.catalogue.prompt_index(prompt_id).is_none() {
        return Err(fail(
            ctx,
            StatusCode::NOT_FOUND,
            &format!("unknown item: no prompt `{prompt_id}`"),
        ));
    }
    state.catalogue.answer(prompt_id, key).ok_or_else(|| {
        fail(
            ctx,
            StatusCode::NOT_FOUND,
            &format!("unknown item: prompt `{prompt_id}` has no answer `{key}`"),
        )
    })
}

/// Run a database write on the blocking pool; a database error is a 500
/// naming the file (the judgement was not stored).
async fn store<F>(state: &Arc<AppState>, ctx: &PageContext, write: F) -> Result<Stored, Response>
where
    F: FnOnce(&mut LabelDb) -> anyhow::Result<Stored> + Send + 'static,
{
    let st = state.clone();
    let result = tokio::task::spawn_blocking(move || write(&mut lock(&st.db))).await;
    match result {
        Ok(Ok(stored)) => Ok(stored),
        Ok(Err(e)) => Err(fail(
            ctx,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the judgement was not stored: {e:#}"),
        )),
        Err(e) => Err(fail(
            ctx,
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the judgement was not stored: {e}"),
        )),
    }
}

fn stored_response(ctx: &PageContext, stored: Stored, next: &str) -> Response {
    match stored {
        Stored::New => see_other(next, "stored", &[]),
        Stored::Duplicate => see_other(next, "duplicate", &[]),
        Stored::Conflict => fail(
            ctx,
            StatusCode::CONFLICT,
            "this submission_id was already used for another judgement",
        ),
        Stored::AlreadyJudged => fail(
            ctx,
            StatusCode::CONFLICT,
            "you already judged this (under another submission_id); your first verdict stands",
        ),
    }
}

/// Maximum length of a free-text reason, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

async fn post_arena(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    let Judging { fields, annotator } = match judging_form(&ctx, &headers, form) {
        Ok(j) => j,
        Err(r) => return r,
    };
    let bad = |m: String| fail(&ctx, StatusCode::BAD_REQUEST, &m);
    let parsed = (|| {
        let id = fields.required("submission_id")?;
        auth::check_submission_id(id)?;
        let choice = fields.required("choice")?;
        let choice = Choice::parse(choice)
            .ok_or_else(|| format!("field `choice` is `{choice}`: one of a, b, tie, both_bad"))?;
        let reason = fields.get("reason").unwrap_or("").trim();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(format!(
                "field `reason` is longer than {MAX_REASON_CHARS} characters"
            ));
        }
        Ok((
            id.to_string(),
            fields.required("prompt_id")?.to_string(),
            fields.required("a")?.to_string(),
            fields.required("b")?.to_string(),
            choice,
            reason.to_string(),
        ))
    })();
    let (id, prompt_id, key_a, key_b, choice, reason) = match parsed {
        Ok(p) => p,
        Err(m) => return bad(m),
    };
    if key_a == key_b {
        return bad("fields `a` and `b` name the same answer".into());
    }
    let (ra, rb) = match (
        find_answer(&state, &ctx, &prompt_id, &key_a),
        find_answer(&state, &ctx, &prompt_id, &key_b),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let (p, a) = state.catalogue.get(ra);
    let (_, b) = state.catalogue.get(rb);
    let judgement = PairJudgement {
        submission_id: id,
        annotator: annotator.clone(),
        prompt_id: p.prompt_id.clone(),
        prompt: p.prompt.clone(),
        key_a: a.key.clone(),
        system_a: a.system.clone(),
        response_a: a.text.clone(),
        key_b: b.key.clone(),
        system_b: b.system.clone(),
        response_b: b.text.clone(),
        choice,
        reason,
        created_at: db::now(),
    };
    let stored = match store(&state, &ctx, move |db| db.insert_pair(&judgement)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if stored == Stored::New {
        state.pair_count.fetch_add(1, Ordering::Relaxed);
        let mut s = lock(&state.scheduler);
        if let Some(i) = s.pair_index(ra.prompt, ra.answer, rb.answer) {
            s.record_pair(&state.catalogue, &annotator, i);
        }
    }
    stored_response(&ctx, stored, "/arena")
}

async fn post_single(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    let Judging { fields, annotator } = match judging_form(&ctx, &headers, form) {
        Ok(j) => j,
        Err(r) => return r,
    };
    let parsed = (|| {
        let id = fields.required("submission_id")?;
        auth::check_submission_id(id)?;
        let up = match fields.required("thumbs")? {
            "up" => true,
            "down" => false,
            other => return Err(format!("field `thumbs` is `{other}`: up or down")),
        };
        let rating = match fields.get("rating").unwrap_or("") {
            "" => None,
            r => match r.parse::<u8>() {
                Ok(v) if (1..=10).contains(&v) => Some(v),
                _ => return Err(format!("field `rating` is `{r}`: 1 to 10, or empty")),
            },
        };
        let mut flaws = Vec::new();
        for f in fields.all("flaw") {
            let flaw = Flaw::from_name(f).ok_or_else(|| {
                format!("field `flaw` is `{f}`: incorrect, unhelpful, harmful, rude or too_long")
            })?;
            if !flaws.contains(&flaw) {
                flaws.push(flaw);
            }
        }
        Ok((
            id.to_string(),
            fields.required("prompt_id")?.to_string(),
            fields.required("answer")?.to_string(),
            up,
            rating,
            flaws,
        ))
    })();
    let (id, prompt_id, key, up, rating, flaws) = match parsed {
        Ok(p) => p,
        Err(m) => return fail(&ctx, StatusCode::BAD_REQUEST, &m),
    };
    let r = match find_answer(&state, &ctx, &prompt_id, &key) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (p, a) = state.catalogue.get(r);
    let judgement = SingleJudgement {
        submission_id: id,
        annotator: annotator.clone(),
        prompt_id: p.prompt_id.clone(),
        prompt: p.prompt.clone(),
        key: a.key.clone(),
        system: a.system.clone(),
        response: a.text.clone(),
        up,
        rating,
        flaws,
        created_at: db::now(),
    };
    let stored = match store(&state, &ctx, move |db| db.insert_single(&judgement)).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if stored == Stored::New {
        let mut s = lock(&state.scheduler);
        if let Some(i) = s.single_index(r.prompt, r.answer) {
            s.record_single(&annotator, i);
        }
    }
    stored_response(&ctx, stored, "/single")
}

/// The leaderboard of the current votes, recomputed only when they changed.
async fn current_board(
    state: &Arc<AppState>,
) -> anyhow::Result<(usize, Leaderboard, Option<String>)> {
    let version = state.pair_count.load(Ordering::Relaxed);
    if let Some(c) = lock(&state.board).as_ref().filter(|c| c.version == version) {
        return Ok((c.version, c.board.clone(), c.svg.clone()));
    }
    let st = state.clone();
    let (board, svg) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let pairs = lock(&st.db).pairs()?;
        let board = leaderboard::leaderboard(&pairs);
        let svg = leaderboard::figure(&board)?.map(|f| f.svg().to_string());
        Ok((board, svg))
    })
    .await??;
    *lock(&state.board) = Some(CachedBoard {
        version,
        board: board.clone(),
        svg: svg.clone(),
    });
    Ok((version, board, svg))
}

async fn leaderboard_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie) = context(&headers, &nonce);
    match current_board(&state).await {
        Ok((version, board, _)) => {
            html_page(cookie, pages::leaderboard_page(&ctx, &board, version))
        }
        Err(e) => fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
    }
}

async fn leaderboard_svg(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    match current_board(&state).await {
        Ok((_, _, Some(svg))) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Ok((_, _, None)) => fail(
            &ctx,
            StatusCode::NOT_FOUND,
            "no ratings yet: no systems compared",
        ),
        Err(e) => fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
    }
}

async fn export_file(
    state: Arc<AppState>,
    ctx: PageContext,
    filename: &'static str,
    make: fn(&LabelDb) -> anyhow::Result<String>,
) -> Response {
    let st = state.clone();
    match tokio::task::spawn_blocking(move || make(&lock(&st.db))).await {
        Ok(Ok(text)) => (
            [
                (
                    header::CONTENT_TYPE,
                    "application/x-ndjson; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ),
            ],
            text,
        )
            .into_response(),
        Ok(Err(e)) => fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => fail(&ctx, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn export_records(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    export_file(state, ctx, "records.jsonl", export::records_jsonl).await
}

async fn export_trl(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, _) = context(&headers, &nonce);
    export_file(state, ctx, "trl.jsonl", export::trl_jsonl).await
}

fn json_response(cookie: Option<String>, value: serde_json::Value) -> Response {
    let mut res = respond(
        StatusCode::OK,
        &cookie.into_iter().collect::<Vec<_>>(),
        value.to_string(),
    );
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// An API request's context, the cookie to set and the caller's name; a 400
/// when the caller has no name yet ([`annotator`]).
#[allow(clippy::result_large_err)]
fn api_caller(
    headers: &HeaderMap,
    nonce: &Nonce,
) -> Result<(PageContext, Option<String>, String), Response> {
    let (ctx, cookie) = context(headers, nonce);
    let name = annotator(&ctx)?;
    Ok((ctx, cookie, name))
}

/// The system that wrote answer `key` of prompt `prompt_id` ("" if unknown).
fn system_of(state: &AppState, prompt_id: &str, key: &str) -> String {
    state
        .catalogue
        .answer(prompt_id, key)
        .map(|r| state.catalogue.get(r).1.system.clone())
        .unwrap_or_default()
}

/// The next pair as JSON (for simulated annotators, with the systems, which
/// the page hides from people): 204 when the annotator has judged every pair.
async fn api_arena_next(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie, name) = match api_caller(&headers, &nonce) {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let Some(t) = next_arena_task(&state, &name) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let system = |key: &str| system_of(&state, &t.prompt_id, key);
    json_response(
        cookie,
        serde_json::json!({
            "prompt_id": t.prompt_id, "prompt": t.prompt,
            "a": {"key": t.left.key, "system": system(&t.left.key), "text": t.left.text},
            "b": {"key": t.right.key, "system": system(&t.right.key), "text": t.right.text},
            "submission_id": t.submission_id, "csrf": ctx.csrf,
        }),
    )
}

/// The next single answer as JSON; 204 when there is none left.
async fn api_single_next(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Extension(nonce): Extension<Nonce>,
) -> Response {
    let (ctx, cookie, name) = match api_caller(&headers, &nonce) {
        Ok(caller) => caller,
        Err(r) => return r,
    };
    let Some(t) = next_single_task(&state, &name) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    let system = system_of(&state, &t.prompt_id, &t.answer.key);
    json_response(
        cookie,
        serde_json::json!({
            "prompt_id": t.prompt_id, "prompt": t.prompt,
            "answer": {"key": t.answer.key, "system": system, "text": t.answer.text},
            "submission_id": t.submission_id, "csrf": ctx.csrf,
        }),
    )
}
