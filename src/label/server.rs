//! Starting the server: checks on the address and the token, the tokio
//! runtime, in the foreground (the CLI) or on a background thread (notebooks,
//! tests), with a handle that stops it.

use super::db::LabelDb;
use super::items::read_items;
use super::routes::{router, AppState};
use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

/// Default largest request body, in bytes: a judgement is a few hundred bytes,
/// a reason at most a few KiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024;

/// Default number of annotators per pair.
pub const DEFAULT_OVERLAP: u32 = 3;

/// Where and what to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// The items to label (see [`super::items`] for the formats).
    pub items: PathBuf,
    /// The SQLite database of judgements (created if missing).
    pub db: PathBuf,
    /// The address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The shared secret; required when `bind` is not a loopback address.
    pub token: Option<String>,
    /// The largest request body accepted (413 above).
    pub body_limit: usize,
    /// Annotators each pair gets before new pairs are opened, so that their
    /// agreement can be measured (rung 5's simulations use 3).
    pub overlap: u32,
}

impl ServerConfig {
    /// Serve `items` into `db` on 127.0.0.1:8080 without a token.
    pub fn new(items: impl Into<PathBuf>, db: impl Into<PathBuf>) -> Self {
        Self {
            items: items.into(),
            db: db.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            overlap: DEFAULT_OVERLAP,
        }
    }

    /// Check the address and the token: anything but loopback needs a token
    /// of at least 8 characters, since anyone who can reach the port could
    /// otherwise vote.
    pub fn check(&self) -> Result<()> {
        if self.overlap == 0 {
            bail!("--overlap is 0: each pair needs at least 1 annotator");
        }
        if let Some(t) = &self.token {
            if t.chars().count() < 8 {
                bail!(
                    "--token is {} characters: use at least 8",
                    t.chars().count()
                );
            }
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!("--token contains whitespace or control characters");
            }
        }
        if !self.bind.ip().is_loopback() && self.token.is_none() {
            bail!(
                "--bind {} is not a loopback address: anyone who can reach it could vote, so \
                 --token SECRET is required (a shared secret annotators get in the link)",
                self.bind
            );
        }
        Ok(())
    }
}

/// What [`start`] prepared: the state, the bound socket, the links.
struct Prepared {
    state: Arc<AppState>,
    listener: TcpListener,
    info: ServerInfo,
}

/// Where a started server is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInfo {
    /// The address actually bound (the port chosen when asked for port 0).
    pub addr: SocketAddr,
    /// The base URL, e.g. `http://127.0.0.1:8080` (loopback when bound to all addresses).
    pub url: String,
    /// The link to give annotators (with `?token=` when a token is set).
    pub link: String,
    pub prompts: usize,
    pub pairs: usize,
    /// Judgements already in the database at start.
    pub stored: usize,
}

fn prepare(config: &ServerConfig) -> Result<Prepared> {
    config.check()?;
    let catalogue = read_items(&config.items)?;
    let db = LabelDb::open(&config.db)?;
    let stored = db.submission_ids()?.len();
    let (prompts, pairs) = (catalogue.prompts.len(), catalogue.pairs.len());
    let state = Arc::new(AppState::new(
        catalogue,
        db,
        config.token.clone(),
        config.overlap,
    )?);
    let listener =
        TcpListener::bind(config.bind).with_context(|| format!("binding to {}", config.bind))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    let url = format!("http://{host}");
    let link = match &config.token {
        Some(t) => format!("{url}/?token={}", super::escape::url_component(t)),
        None => format!("{url}/"),
    };
    Ok(Prepared {
        state,
        listener,
        info: ServerInfo {
            addr,
            url,
            link,
            prompts,
            pairs,
            stored,
        },
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()
        .context("starting the tokio runtime")
}

async fn run(
    prepared_listener: TcpListener,
    state: Arc<AppState>,
    body_limit: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(prepared_listener)?;
    axum::serve(listener, router(state, body_limit))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

/// Serve in the foreground until Ctrl-C; `started` is called once listening
/// (the CLI prints the link).
pub fn serve(config: &ServerConfig, started: impl FnOnce(&ServerInfo)) -> Result<()> {
    let p = prepare(config)?;
    started(&p.info);
    runtime()?.block_on(run(p.listener, p.state, config.body_limit, async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}

/// A server running on a background thread; dropping it stops the server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    /// The link to give annotators (with the token when one is set).
    pub link: String,
    /// The database the judgements go to.
    pub db: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Stop the server (open requests finish) and wait for it.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the label server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Start the server on a background thread and return once it listens (bind
/// to port 0 for a free port; [`ServerHandle::url`] says which). For notebooks:
/// start, print the link, label (or [`super::simulate_annotators`]), read the db.
pub fn serve_in_background(config: &ServerConfig) -> Result<ServerHandle> {
    let p = prepare(config)?;
    let rt = runtime()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let body_limit = config.body_limit;
    let thread = std::thread::Builder::new()
        .name("rlhf-lab-label".into())
        .spawn(move || {
            rt.block_on(run(p.listener, p.state, body_limit, async {
                let _ = rx.await;
            }))
        })
        .context("starting the label server thread")?;
    Ok(ServerHandle {
        url: p.info.url,
        link: p.info.link,
        db: config.db.clone(),
        stop: Some(tx),
        thread: Some(thread),
    })
}
