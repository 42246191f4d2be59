//! The judgements, in SQLite: WAL mode, `synchronous = FULL`, one transaction
//! per judgement, committed before the server answers, so nothing the server
//! acknowledged is lost when it is killed. Each judgement carries the
//! client-generated `submission_id` (UNIQUE): a double click or a retry stores
//! one row. Rows keep the prompt and answer texts, so the database alone can be
//! exported ([`super::export`]).

use crate::feedback::records::Flaw;
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// The annotator's verdict on a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    A,
    B,
    Tie,
    /// Neither answer is acceptable; exported as a tie (no preference).
    BothBad,
}

impl Choice {
    /// The form and database spelling: `a`, `b`, `tie`, `both_bad`.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::A => "a",
            Choice::B => "b",
            Choice::Tie => "tie",
            Choice::BothBad => "both_bad",
        }
    }

    /// Parse [`Self::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "a" => Choice::A,
            "b" => Choice::B,
            "tie" => Choice::Tie,
            "both_bad" => Choice::BothBad,
            _ => return None,
        })
    }
}

/// One head-to-head judgement: answer A was shown on the left, B on the right.
#[derive(Debug, Clone, PartialEq)]
pub struct PairJudgement {
    pub submission_id: String,
    pub annotator: String,
    pub prompt_id: String,
    pub prompt: String,
    pub key_a: String,
    pub system_a: String,
    pub response_a: String,
    pub key_b: String,
    pub system_b: String,
    pub response_b: String,
    pub choice: Choice,
    /// The annotator's optional free-text reason.
    pub reason: String,
    /// Unix time in seconds when it was stored.
    pub created_at: f64,
}

/// One judgement of a single answer: thumbs, an optional 1–10 rating, and
/// the flaws ticked on the checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleJudgement {
    pub submission_id: String,
    pub annotator: String,
    pub prompt_id: String,
    pub prompt: String,
    pub key: String,
    pub system: String,
    pub response: String,
    pub up: bool,
    pub rating: Option<u8>,
    pub flaws: Vec<Flaw>,
    pub created_at: f64,
}

/// What happened to a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row, committed.
    New,
    /// The same submission was stored before (a retry or double click).
    Duplicate,
    /// The id was used before for a different judgement.
    Conflict,
    /// The annotator already judged this pair (or answer) under another id.
    AlreadyJudged,
}

impl Stored {
    /// What an `INSERT … ON CONFLICT DO NOTHING` of one judgement did, from the
    /// rows it inserted and — only when it inserted none — `same_as_stored`:
    /// whether the row already under this submission id is this judgement
    /// (`None`: no row has the id, so the one-verdict index refused it).
    fn of_insert(
        inserted: usize,
        same_as_stored: impl FnOnce() -> rusqlite::Result<Option<bool>>,
    ) -> rusqlite::Result<Stored> {
        if inserted == 1 {
            return Ok(Stored::New);
        }
        Ok(match same_as_stored()? {
            Some(true) => Stored::Duplicate,
            Some(false) => Stored::Conflict,
            None => Stored::AlreadyJudged,
        })
    }
}

/// The labelling database.
pub struct LabelDb {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pair_judgements (
    id INTEGER PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE,
    annotator TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    key_a TEXT NOT NULL,
    system_a TEXT NOT NULL,
    response_a TEXT NOT NULL,
    key_b TEXT NOT NULL,
    system_b TEXT NOT NULL,
    response_b TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')),
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS single_judgements (
    id INTEGER PRIMARY KEY,
    submission_id TEXT NOT NULL UNIQUE,
    annotator TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    key TEXT NOT NULL,
    system TEXT NOT NULL,
    response TEXT NOT NULL,
    up INTEGER NOT NULL CHECK (up IN (0, 1)),
    rating INTEGER CHECK (rating BETWEEN 1 AND 10),
    flaws TEXT NOT NULL,
    created_at REAL NOT NULL
);
-- One verdict per annotator per pair (either order) and per single answer:
-- a page reloaded after its vote gets a fresh submission id, not a second vote.
CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_pair
    ON pair_judgements (annotator, prompt_id, min(key_a, key_b), max(key_a, key_b));
CREATE UNIQUE INDEX IF NOT EXISTS one_vote_per_answer
    ON single_judgements (annotator, prompt_id, key);
";

impl LabelDb {
    /// Open (or create) the database at `path`: WAL mode, full sync, the schema.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening the label database {}", path.display()))?;
        let setup = || -> rusqlite::Result<()> {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if mode != "wal" {
                return Err(rusqlite::Error::InvalidQuery);
            }
            conn.execute_batch(
                "PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
            )?;
            conn.execute_batch(SCHEMA)
        };
        setup().with_context(|| {
            format!(
                "setting up {} (WAL mode and schema; is it a label database?)",
                path.display()
            )
        })?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Store a pair judgement in its own transaction (committed on return).
    pub fn insert_pair(&mut self, j: &PairJudgement) -> Result<Stored> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO pair_judgements (submission_id, annotator, prompt_id, prompt, key_a, system_a,
                 response_a, key_b, system_b, response_b, choice, reason, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT DO NOTHING",
            params![
                j.submission_id,
                j.annotator,
                j.prompt_id,
                j.prompt,
                j.key_a,
                j.system_a,
                j.response_a,
                j.key_b,
                j.system_b,
                j.response_b,
                j.choice.as_str(),
                j.reason,
                j.created_at
            ],
        )?;
        let stored = Stored::of_insert(n, || {
            tx.query_row(
                "SELECT annotator = ?2 AND prompt_id = ?3 AND key_a = ?4 AND key_b = ?5 AND choice = ?6
                 FROM pair_judgements WHERE submission_id = ?1",
                params![
                    j.submission_id,
                    j.annotator,
                    j.prompt_id,
                    j.key_a,
                    j.key_b,
                    j.choice.as_str()
                ],
                |r| r.get(0),
            )
            .optional()
        })?;
        tx.commit()
            .with_context(|| format!("committing to {}", self.path.display()))?;
        Ok(stored)
    }

    /// Store a single-answer judgement in its own transaction.
    pub fn insert_single(&mut self, j: &SingleJudgement) -> Result<Stored> {
        let flaws: Vec<&str> = j.flaws.iter().map(|f| f.name()).collect();
        let flaws = flaws.join(",");
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO single_judgements (submission_id, annotator, prompt_id, prompt, key, system,
                 response, up, rating, flaws, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT DO NOTHING",
            params![
                j.submission_id,
                j.annotator,
                j.prompt_id,
                j.prompt,
                j.key,
                j.system,
                j.response,
                j.up,
                j.rating,
                flaws,
                j.created_at
            ],
        )?;
        let stored = Stored::of_insert(n, || {
            tx.query_row(
                "SELECT annotator = ?2 AND prompt_id = ?3 AND key = ?4 AND up = ?5
                 FROM single_judgements WHERE submission_id = ?1",
                params![j.submission_id, j.annotator, j.prompt_id, j.key, j.up],
                |r| r.get(0),
            )
            .optional()
        })?;
        tx.commit()
            .with_context(|| format!("committing to {}", self.path.display()))?;
        Ok(stored)
    }

    /// Every pair judgement, in the order stored.
    pub fn pairs(&self) -> Result<Vec<PairJudgement>> {
        let mut st = self.conn.prepare(
            "SELECT submission_id, annotator, prompt_id, prompt, key_a, system_a, response_a,
                    key_b, system_b, response_b, choice, reason, created_at
             FROM pair_judgements ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let choice: String = r.get(10)?;
            Ok(PairJudgement {
                submission_id: r.get(0)?,
                annotator: r.get(1)?,
                prompt_id: r.get(2)?,
                prompt: r.get(3)?,
                key_a: r.get(4)?,
                system_a: r.get(5)?,
                response_a: r.get(6)?,
                key_b: r.get(7)?,
                system_b: r.get(8)?,
                response_b: r.get(9)?,
                // The CHECK constraint admits only the four spellings.
                choice: Choice::parse(&choice).unwrap_or(Choice::Tie),
                reason: r.get(11)?,
                created_at: r.get(12)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .with_context(|| format!("reading {}", self.path.display()))
    }

    /// Every single-answer judgement, in the order stored.
    pub fn singles(&self) -> Result<Vec<SingleJudgement>> {
        let mut st = self.conn.prepare(
            "SELECT submission_id, annotator, prompt_id, prompt, key, system, response, up, rating,
                    flaws, created_at
             FROM single_judgements ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let flaws: String = r.get(9)?;
            Ok(SingleJudgement {
                submission_id: r.get(0)?,
                annotator: r.get(1)?,
                prompt_id: r.get(2)?,
                prompt: r.get(3)?,
                key: r.get(4)?,
                system: r.get(5)?,
                response: r.get(6)?,
                up: r.get(7)?,
                rating: r.get(8)?,
                flaws: flaws.split(',').filter_map(Flaw::from_name).collect(),
                created_at: r.get(10)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .with_context(|| format!("reading {}", self.path.display()))
    }

    /// How many times each submission id is stored (always 1 by the UNIQUE
    /// constraint; tests check it) — pair and single judgements together.
    pub fn submission_ids(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT submission_id FROM pair_judgements UNION ALL SELECT submission_id FROM single_judgements",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Unix time now, in seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(id: &str, choice: Choice) -> PairJudgement {
        PairJudgement {
            submission_id: id.into(),
            annotator: "ann".into(),
            prompt_id: "p".into(),
            prompt: "q".into(),
            key_a: "x".into(),
            system_a: "x".into(),
            response_a: "ra".into(),
            key_b: "y".into(),
            system_b: "y".into(),
            response_b: "rb".into(),
            choice,
            reason: String::new(),
            created_at: 1.0,
        }
    }

    #[test]
    fn a_submission_id_is_stored_once_and_reopened_db_keeps_it() {
        let dir = std::env::temp_dir().join(format!("rlhf-lab-labeldb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sqlite");
        let mut db = LabelDb::open(&path).unwrap();
        assert_eq!(
            db.insert_pair(&pair("id-000001", Choice::A)).unwrap(),
            Stored::New
        );
        assert_eq!(
            db.insert_pair(&pair("id-000001", Choice::A)).unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            db.insert_pair(&pair("id-000001", Choice::B)).unwrap(),
            Stored::Conflict
        );
        // The same annotator on the same pair, shown the other way round, under a new id.
        let mut swapped = pair("id-000003", Choice::B);
        std::mem::swap(&mut swapped.key_a, &mut swapped.key_b);
        assert_eq!(db.insert_pair(&swapped).unwrap(), Stored::AlreadyJudged);
        let s = SingleJudgement {
            submission_id: "id-000002".into(),
            annotator: "ann".into(),
            prompt_id: "p".into(),
            prompt: "q".into(),
            key: "x".into(),
            system: "x".into(),
            response: "ra".into(),
            up: false,
            rating: Some(3),
            flaws: vec![Flaw::Rude, Flaw::TooLong],
            created_at: 2.0,
        };
        assert_eq!(db.insert_single(&s).unwrap(), Stored::New);
        drop(db);
        let db = LabelDb::open(&path).unwrap();
        assert_eq!(db.pairs().unwrap(), vec![pair("id-000001", Choice::A)]);
        assert_eq!(db.singles().unwrap(), vec![s]);
        assert_eq!(db.submission_ids().unwrap().len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
