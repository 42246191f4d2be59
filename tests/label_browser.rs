//! A real browser against the labelling server: headless Chromium, driven
//! over the DevTools protocol (`--remote-debugging-pipe`, no driver needed),
//! chooses a name, clicks answer A in the arena, and the test checks the
//! database and the leaderboard. It saves screenshots of each page (the path
//! is printed; `RLHF_LAB_SCREENSHOTS=DIR` puts them there).
//!
//! Skipped — saying so — when no Chromium is installed (Debian: `apt-get
//! install chromium`; `scripts/install.sh --test` tries). `RLHF_LAB_CHROMIUM`
//! names the browser binary.
#![cfg(all(feature = "label", unix))]

mod common;

use common::scratch;
use rlhf_lab::label::db::{Choice, LabelDb};
use rlhf_lab::label::{serve_in_background, ServerConfig};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// The browser binary: `RLHF_LAB_CHROMIUM`, else the first of the usual names on PATH.
fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RLHF_LAB_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for name in [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A DevTools session over the pipe: messages are JSON, each ended by a NUL.
struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    fn launch(binary: &Path, profile: &Path) -> Browser {
        // fd 3 is what Chromium reads commands from, fd 4 where it writes
        // answers: the shell maps them onto our stdin and stdout pipes.
        let script = format!(
            "exec '{}' --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
             --no-first-run --remote-debugging-pipe --user-data-dir='{}' about:blank \
             3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null",
            binary.display(),
            profile.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(output);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Browser {
            child,
            input,
            messages: rx,
            next_id: 0,
            session: None,
        }
    }

    /// Send a command and wait for its answer (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut msg = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.input.write_all(&bytes).unwrap();
        self.input.flush().unwrap();
        loop {
            let v = self
                .messages
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no answer from chromium to {method}: {e}"));
            if v["id"] == json!(self.next_id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate JavaScript in the page (DevTools, not subject to the page's CSP).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    /// Poll `condition` (JavaScript, true/false) until it holds; a deadline
    /// only so that a broken page fails the test instead of hanging it.
    fn wait_for(&mut self, condition: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval(condition) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "page never satisfied `{condition}`"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let data = r["data"].as_str().expect("screenshot data");
        std::fs::write(path, base64_decode(data)).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshots come as base64).
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let digits: Vec<u8> = s.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &d| (acc << 6) | d as u32) << (6 * (4 - chunk.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    out
}

fn write_items(dir: &Path) -> PathBuf {
    let rows = [
        (
            "p1",
            "What colour is Ava's cat?",
            "expert",
            "Sure! The answer is orange. Happy to help.",
        ),
        (
            "p1",
            "What colour is Ava's cat?",
            "wrong",
            "Sure! The answer is blue. <script>alert(1)</script>",
        ),
        (
            "p1",
            "What colour is Ava's cat?",
            "rude",
            "Obviously orange, dummy. \"><img src=x onerror=alert(2)>",
        ),
        (
            "p2",
            "How do I plan a picnic?",
            "expert",
            "Make a short plan, pack food, and check the weather.",
        ),
        ("p2", "How do I plan a picnic?", "terse", "Plan it."),
    ];
    let text: String = rows
        .iter()
        .map(|(id, prompt, system, answer)| {
            json!({"prompt_id": id, "prompt": prompt, "system": system, "text": answer}).to_string()
                + "\n"
        })
        .collect();
    let path = dir.join("items.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_browser_clicks_an_answer_and_the_vote_reaches_db_and_leaderboard() {
    let Some(chromium) = find_chromium() else {
        eprintln!(
            "SKIPPED label_browser: no Chromium found (install the Debian package `chromium`, \
             or set RLHF_LAB_CHROMIUM); the browser test did not run"
        );
        return;
    };
    let dir = scratch("browser");
    let shots = std::env::var_os("RLHF_LAB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let mut config = ServerConfig::new(write_items(&dir), dir.join("labels.sqlite"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    let server = serve_in_background(&config).unwrap();

    let mut b = Browser::launch(&chromium, &dir.join("profile"));
    let target = b.call(
        "Target.createTarget",
        json!({"url": format!("{}/", server.url)}),
    );
    let attached = b.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    b.session = Some(attached["sessionId"].as_str().unwrap().to_string());
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": false}),
    );
    b.wait_for(
        "document.readyState === 'complete' && !!document.querySelector('input[name=name]')",
    );
    b.screenshot(&shots.join("1-start.png"));
    b.eval("document.querySelector('input[name=name]').value = 'Browser Bea'; document.querySelector('form button').click()");
    b.wait_for("location.pathname === '/arena' && document.readyState === 'complete' && !!document.getElementById('choose-a')");
    // The hostile answer is text, not markup: no <img> element, no alert script.
    assert_eq!(
        b.eval("document.querySelectorAll('main img, main script').length"),
        json!(0)
    );
    b.screenshot(&shots.join("2-arena.png"));
    let key_a = b.eval("document.querySelector('input[name=a]').value");
    let prompt_id = b.eval("document.querySelector('input[name=prompt_id]').value");
    b.eval("document.getElementById('choose-a').click()");

    // The vote reaches the database...
    let deadline = Instant::now() + Duration::from_secs(60);
    let pairs = loop {
        let pairs = LabelDb::open(&server.db).unwrap().pairs().unwrap();
        if !pairs.is_empty() {
            break pairs;
        }
        assert!(
            Instant::now() < deadline,
            "the click never reached the database"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].annotator, "Browser Bea");
    assert_eq!(pairs[0].choice, Choice::A);
    assert_eq!(json!(pairs[0].key_a), key_a);
    assert_eq!(json!(pairs[0].prompt_id), prompt_id);
    // ...the browser is offered the next pair...
    b.wait_for("location.pathname === '/arena' && document.readyState === 'complete' && document.body.innerText.includes('1 judged so far')");
    // ...and the leaderboard counts it, with its figure.
    b.eval("location.href = '/leaderboard'");
    b.wait_for("location.pathname === '/leaderboard' && document.readyState === 'complete' && document.getElementById('figure') && document.getElementById('figure').complete");
    let text = b
        .eval("document.body.innerText")
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("1 pair judgements by 1 annotators"), "{text}");
    assert!(
        b.eval("document.getElementById('figure').naturalWidth > 0") == json!(true),
        "the SVG figure did not load"
    );
    // A few more votes for a fuller leaderboard screenshot, then the single-answer page.
    for choice in ["choose-b", "choose-tie", "choose-a"] {
        b.eval("location.href = '/arena'");
        b.wait_for("location.pathname === '/arena' && document.readyState === 'complete'");
        if b.eval(&format!("!!document.getElementById('{choice}')")) == json!(true) {
            let before = LabelDb::open(&server.db).unwrap().pairs().unwrap().len();
            b.eval(&format!("document.getElementById('{choice}').click()"));
            let deadline = Instant::now() + Duration::from_secs(60);
            while LabelDb::open(&server.db).unwrap().pairs().unwrap().len() == before {
                assert!(Instant::now() < deadline, "vote {choice} never stored");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    b.eval("location.href = '/leaderboard'");
    b.wait_for("location.pathname === '/leaderboard' && document.readyState === 'complete' && document.getElementById('figure') && document.getElementById('figure').complete");
    b.screenshot(&shots.join("3-leaderboard.png"));
    b.eval("location.href = '/single'");
    b.wait_for("location.pathname === '/single' && document.readyState === 'complete' && !!document.getElementById('thumbs-up')");
    b.screenshot(&shots.join("4-single.png"));
    eprintln!("screenshots in {}", shots.display());
    for name in ["1-start", "2-arena", "3-leaderboard", "4-single"] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is not a PNG");
    }
}
