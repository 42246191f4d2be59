//! Gridworld maps: parsing text files into a grid of cells plus parameters.
//!
//! # File format
//! ```text
//! // Comment lines start with `//`.
//! name = aima
//! step_reward = -0.04   // paid for every move that does not end the episode
//! slip = 0.2            // probability of slipping sideways (p/2 each side)
//! gamma = 1.0           // discount factor
//! dragon_reward = -10   // paid when the agent walks into the dragon
//! max_steps = 100       // episode truncation for the simulator
//!
//!  .  .  .  +1
//!  .  #  . -1
//!  S  .  .  .
//! ```
//! Grid rows are whitespace-separated tokens, one per cell:
//! `.` empty, `#` wall, `S` start (exactly one), `D` the dragon (terminal, pays
//! `dragon_reward`), and a signed number such as `+1`, `5` or `-1` for a terminal
//! cell that pays that many points. Every row must have the same number of cells.
//!
//! Every error names the source (file path or `<string>`), the line and the column.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// One cell of the grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Cell {
    /// Free cell; moving here pays the step reward.
    Empty,
    /// Blocks movement: the agent bumps and stays where it is.
    Wall,
    /// Where every episode begins (an ordinary free cell otherwise).
    Start,
    /// Terminal cell that pays the given points when entered.
    Points(f64),
    /// Terminal cell that pays the map's `dragon_reward` (large and negative).
    Dragon,
}

impl Cell {
    /// Terminal cells end the episode when entered.
    pub fn is_terminal(self) -> bool {
        matches!(self, Cell::Points(_) | Cell::Dragon)
    }
}

/// Numeric parameters of a map (its header).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapParams {
    /// Reward for every move that does not enter a terminal cell (the "constraint as a penalty").
    pub step_reward: f64,
    /// Probability of slipping: the agent goes to each perpendicular side with `slip / 2`.
    pub slip: f64,
    /// Discount factor γ in (0, 1].
    pub gamma: f64,
    /// Reward for entering the dragon's cell.
    pub dragon_reward: f64,
    /// Episodes are truncated (not terminated) after this many steps.
    pub max_steps: usize,
}

impl Default for MapParams {
    fn default() -> Self {
        Self {
            step_reward: -0.04,
            slip: 0.0,
            gamma: 0.99,
            dragon_reward: -10.0,
            max_steps: 100,
        }
    }
}

/// A parsed map: its name, parameters and cells (row 0 is the top row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Map {
    pub name: String,
    pub params: MapParams,
    pub rows: usize,
    pub cols: usize,
    cells: Vec<Cell>,
    pub start: (usize, usize),
}

/// What went wrong while reading a map.
#[derive(Debug, Clone, PartialEq)]
pub enum MapErrorKind {
    Io(String),
    UnknownSymbol(String),
    UnknownParameter(String),
    BadParameter {
        key: String,
        value: String,
        reason: String,
    },
    RaggedRow {
        expected: usize,
        found: usize,
    },
    TwoStarts {
        first_line: usize,
        first_column: usize,
    },
    NoStart,
    NoTerminal,
    EmptyGrid,
    StartBoxedIn,
    NoTerminalReachable,
    /// More than [`MAX_CELLS`] cells.
    TooLarge {
        rows: usize,
        cols: usize,
    },
}

/// The most cells a map may have (100×100, the size of the solver benchmark).
/// The exact solvers sweep every cell once per sweep and need about as many
/// sweeps as the longest path through the map, so their time grows with the
/// square of the cell count: a 2000×2000 map or a corridor of a million cells
/// would run for hours. PPO's one-hot observations take cells² numbers as well.
pub const MAX_CELLS: usize = 10_000;

/// A map error with its location: `source:line:column: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct MapError {
    pub source_name: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    pub kind: MapErrorKind,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.source_name, self.line, self.column)?;
        match &self.kind {
            MapErrorKind::Io(e) => write!(f, "cannot read map: {e}"),
            MapErrorKind::UnknownSymbol(s) => write!(
                f,
                "unknown symbol `{s}` (expected `.` empty, `#` wall, `S` start, `D` dragon, or a number like `+1`)"
            ),
            MapErrorKind::UnknownParameter(k) => write!(
                f,
                "unknown parameter `{k}` (known: name, step_reward, slip, gamma, dragon_reward, max_steps)"
            ),
            MapErrorKind::BadParameter { key, value, reason } => {
                write!(f, "bad value `{value}` for `{key}`: {reason}")
            }
            MapErrorKind::RaggedRow { expected, found } => write!(
                f,
                "ragged row: it has {found} cells but the first row has {expected}"
            ),
            MapErrorKind::TwoStarts { first_line, first_column } => write!(
                f,
                "a second start `S` (the first is at line {first_line}, column {first_column}); a map has exactly one"
            ),
            MapErrorKind::NoStart => write!(f, "no start cell `S` in the grid"),
            MapErrorKind::NoTerminal => {
                write!(f, "no terminal cell (points like `+1` or a dragon `D`)")
            }
            MapErrorKind::EmptyGrid => write!(f, "the map has no grid rows"),
            MapErrorKind::StartBoxedIn => write!(
                f,
                "the start is boxed in: walls or the edge on all four sides"
            ),
            MapErrorKind::NoTerminalReachable => {
                write!(f, "no terminal cell can be reached from the start")
            }
            MapErrorKind::TooLarge { rows, cols } => write!(
                f,
                "the grid has {rows}×{cols} = {} cells, more than the limit of {MAX_CELLS} \
                 (e.g. 100×100): the exact solvers' time grows with the square of the cell \
                 count, so a larger map would run for hours",
                rows.saturating_mul(*cols)
            ),
        }
    }
}

impl std::error::Error for MapError {}

impl Map {
    /// Parse a map file; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, MapError> {
        let path = path.as_ref();
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MapError {
            source_name: source_name.clone(),
            line: 0,
            column: 0,
            kind: MapErrorKind::Io(e.to_string()),
        })?;
        let default_name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&text, &source_name, &default_name)
    }

    /// Parse a map from a string (errors name it `<string>`).
    pub fn from_str_named(text: &str, name: &str) -> Result<Self, MapError> {
        Self::parse(text, "<string>", name)
    }

    /// Parse `text`; `source_name` appears in errors, `default_name` unless the header sets `name`.
    pub fn parse(text: &str, source_name: &str, default_name: &str) -> Result<Self, MapError> {
        let err = |line: usize, column: usize, kind: MapErrorKind| MapError {
            source_name: source_name.to_string(),
            line,
            column,
            kind,
        };
        let mut params = MapParams::default();
        let mut name = default_name.to_string();
        let mut cells = Vec::new();
        let mut rows = 0usize;
        let mut cols = 0usize;
        let mut start: Option<(usize, usize, usize, usize)> = None; // row, col, line, column
        let mut last_line = 0;
        // The line where the grid first exceeded MAX_CELLS (reported once the size is known).
        let mut too_large_at: Option<usize> = None;

        for (line_idx, raw) in text.lines().enumerate() {
            let line_no = line_idx + 1;
            last_line = line_no;
            let content = match raw.find("//") {
                Some(i) => &raw[..i],
                None => raw,
            };
            if content.trim().is_empty() {
                continue;
            }
            if let Some(eq) = content.find('=') {
                let key = content[..eq].trim();
                let value = content[eq + 1..].trim();
                let value_col =
                    eq + 2 + (content[eq + 1..].len() - content[eq + 1..].trim_start().len());
                let key_col = content.len() - content.trim_start().len() + 1;
                let bad = |reason: &str| {
                    err(
                        line_no,
                        value_col,
                        MapErrorKind::BadParameter {
                            key: key.to_string(),
                            value: value.to_string(),
                            reason: reason.to_string(),
                        },
                    )
                };
                let number = || -> Result<f64, MapError> {
                    value
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| bad("not a finite number"))
                };
                match key {
                    "name" => name = value.to_string(),
                    "step_reward" => params.step_reward = number()?,
                    "dragon_reward" => params.dragon_reward = number()?,
                    "slip" => {
                        let p = number()?;
                        if !(0.0..=1.0).contains(&p) {
                            return Err(bad("a probability must be in [0, 1]"));
                        }
                        params.slip = p;
                    }
                    "gamma" => {
                        let g = number()?;
                        if !(g > 0.0 && g <= 1.0) {
                            return Err(bad("the discount must be in (0, 1]"));
                        }
                        params.gamma = g;
                    }
                    "max_steps" => {
                        params.max_steps = value
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n > 0)
                            .ok_or_else(|| bad("must be a positive whole number"))?;
                    }
                    _ => {
                        return Err(err(
                            line_no,
                            key_col,
                            MapErrorKind::UnknownParameter(key.to_string()),
                        ))
                    }
                }
                continue;
            }
            // A grid row: whitespace-separated tokens with their 1-based character columns.
            let mut row_cells = Vec::new();
            let mut chars = content.char_indices().peekable();
            // Characters consumed so far, so that columns cost nothing to find
            // (counting from the line's start for every token is quadratic).
            let mut consumed = 0usize;
            while let Some(&(i, c)) = chars.peek() {
                if c.is_whitespace() {
                    chars.next();
                    consumed += 1;
                    continue;
                }
                let begin = i;
                let column = consumed + 1;
                let mut end = i;
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    end = j + c.len_utf8();
                    chars.next();
                    consumed += 1;
                }
                let token = &content[begin..end];
                let cell = match token {
                    "." => Cell::Empty,
                    "#" => Cell::Wall,
                    "S" => {
                        if let Some((_, _, l, c)) = start {
                            return Err(err(
                                line_no,
                                column,
                                MapErrorKind::TwoStarts {
                                    first_line: l,
                                    first_column: c,
                                },
                            ));
                        }
                        start = Some((rows, row_cells.len(), line_no, column));
                        Cell::Start
                    }
                    "D" => Cell::Dragon,
                    t => match t.parse::<f64>() {
                        Ok(x) if x.is_finite() => Cell::Points(x),
                        _ => {
                            return Err(err(
                                line_no,
                                column,
                                MapErrorKind::UnknownSymbol(t.to_string()),
                            ))
                        }
                    },
                };
                row_cells.push(cell);
            }
            if rows == 0 {
                cols = row_cells.len();
            } else if row_cells.len() != cols {
                let column = content.trim_end().chars().count() + 1;
                return Err(err(
                    line_no,
                    column.min(content.chars().count() + 1),
                    MapErrorKind::RaggedRow {
                        expected: cols,
                        found: row_cells.len(),
                    },
                ));
            }
            if too_large_at.is_none() && cells.len() + row_cells.len() > MAX_CELLS {
                too_large_at = Some(line_no);
            }
            if too_large_at.is_none() {
                cells.extend(row_cells);
            }
            rows += 1;
        }
        if let Some(line) = too_large_at {
            return Err(err(line, 1, MapErrorKind::TooLarge { rows, cols }));
        }
        if rows == 0 {
            return Err(err(last_line.max(1), 1, MapErrorKind::EmptyGrid));
        }
        let Some((sr, sc, sline, scol)) = start else {
            return Err(err(last_line.max(1), 1, MapErrorKind::NoStart));
        };
        if !cells.iter().any(|c| c.is_terminal()) {
            return Err(err(last_line.max(1), 1, MapErrorKind::NoTerminal));
        }
        let map = Map {
            name,
            params,
            rows,
            cols,
            cells,
            start: (sr, sc),
        };
        let neighbours = [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)];
        if neighbours
            .iter()
            .all(|&(dr, dc)| map.passable_offset(sr, sc, dr, dc).is_none())
        {
            return Err(err(sline, scol, MapErrorKind::StartBoxedIn));
        }
        // Breadth-first search from the start through non-wall cells.
        let mut seen = vec![false; rows * cols];
        let mut queue = std::collections::VecDeque::from([(sr, sc)]);
        seen[sr * cols + sc] = true;
        let mut reachable_terminal = false;
        while let Some((r, c)) = queue.pop_front() {
            if map.cell(r, c).is_terminal() {
                reachable_terminal = true;
                break;
            }
            for &(dr, dc) in &neighbours {
                if let Some((nr, nc)) = map.passable_offset(r, c, dr, dc) {
                    if !seen[nr * cols + nc] {
                        seen[nr * cols + nc] = true;
                        queue.push_back((nr, nc));
                    }
                }
            }
        }
        if !reachable_terminal {
            return Err(err(sline, scol, MapErrorKind::NoTerminalReachable));
        }
        Ok(map)
    }

    /// The cell at `(row, col)`.
    pub fn cell(&self, row: usize, col: usize) -> Cell {
        self.cells[row * self.cols + col]
    }

    /// The neighbour at offset `(dr, dc)` if it is on the grid and not a wall.
    pub fn passable_offset(
        &self,
        row: usize,
        col: usize,
        dr: i64,
        dc: i64,
    ) -> Option<(usize, usize)> {
        let r = row as i64 + dr;
        let c = col as i64 + dc;
        if r < 0 || c < 0 || r >= self.rows as i64 || c >= self.cols as i64 {
            return None;
        }
        let (r, c) = (r as usize, c as usize);
        (self.cell(r, c) != Cell::Wall).then_some((r, c))
    }

    /// Reward paid for entering `(row, col)`: points, the dragon's reward, or the step reward.
    pub fn entry_reward(&self, row: usize, col: usize) -> f64 {
        match self.cell(row, col) {
            Cell::Points(p) => p,
            Cell::Dragon => self.params.dragon_reward,
            _ => self.params.step_reward,
        }
    }

    /// The map written back in its file format (parameters then grid).
    pub fn to_text(&self) -> String {
        let p = &self.params;
        let mut s = format!(
            "name = {}\nstep_reward = {}\nslip = {}\ngamma = {}\ndragon_reward = {}\nmax_steps = {}\n\n",
            self.name, p.step_reward, p.slip, p.gamma, p.dragon_reward, p.max_steps
        );
        for r in 0..self.rows {
            let row: Vec<String> = (0..self.cols)
                .map(|c| match self.cell(r, c) {
                    Cell::Empty => ".".to_string(),
                    Cell::Wall => "#".to_string(),
                    Cell::Start => "S".to_string(),
                    Cell::Dragon => "D".to_string(),
                    Cell::Points(x) => format!("{x:+}"),
                })
                .collect();
            s.push_str(&format!(
                "{:>4}\n",
                row.iter().map(|t| format!("{t:>4}")).collect::<String>()
            ));
        }
        s
    }
}

/// The maps shipped in `gridworld/maps/`, compiled into the crate.
pub mod builtin {
    /// `(name, file text)` for every shipped map.
    pub const MAPS: &[(&str, &str)] = &[
        ("aima", include_str!("../maps/aima.map")),
        ("dragon", include_str!("../maps/dragon.map")),
        ("two_cells", include_str!("../maps/two_cells.map")),
        ("castle", include_str!("../maps/castle.map")),
    ];
}

impl Map {
    /// A shipped map by name (`aima`, `dragon`, `two_cells`, `castle`), or a path to a map file.
    pub fn load(name_or_path: &str) -> Result<Self, MapError> {
        if let Some((name, text)) = builtin::MAPS.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, &format!("gridworld/maps/{name}.map"), name);
        }
        Self::from_file(name_or_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Map, MapError> {
        Map::from_str_named(s, "t")
    }

    #[test]
    fn parses_cells_and_params() {
        let m = parse("slip = 0.1\ngamma=0.9 // discount\n S . +5\n # D -1\n").unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.start, (0, 0));
        assert_eq!(m.cell(0, 2), Cell::Points(5.0));
        assert_eq!(m.cell(1, 1), Cell::Dragon);
        assert_eq!(m.params.slip, 0.1);
        assert_eq!(m.params.gamma, 0.9);
        let again = Map::from_str_named(&m.to_text(), "t").unwrap();
        assert_eq!(again.params, m.params);
        assert_eq!(again.cells, m.cells);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("S . ?\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        assert!(matches!(e.kind, MapErrorKind::UnknownSymbol(ref s) if s == "?"));
        assert!(
            e.to_string()
                .starts_with("<string>:1:5: unknown symbol `?`"),
            "{e}"
        );

        let e = parse("S . +1\n. .\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(
            e.kind,
            MapErrorKind::RaggedRow {
                expected: 3,
                found: 2
            }
        ));

        let e = parse("S . +1\n. S .\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(matches!(
            e.kind,
            MapErrorKind::TwoStarts {
                first_line: 1,
                first_column: 1
            }
        ));

        let e = parse(". . +1\n").unwrap_err();
        assert_eq!(e.kind, MapErrorKind::NoStart);

        let e = parse("S # +1\n# . .\n").unwrap_err();
        assert_eq!(
            (e.line, e.column, e.kind.clone()),
            (1, 1, MapErrorKind::StartBoxedIn)
        );

        let e = parse("S . # +1\n").unwrap_err();
        assert_eq!(e.kind, MapErrorKind::NoTerminalReachable);

        let e = parse("slip = 1.5\nS +1\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 8));
        assert!(matches!(e.kind, MapErrorKind::BadParameter { .. }));

        let e = parse("colour = red\nS +1\n").unwrap_err();
        assert!(matches!(e.kind, MapErrorKind::UnknownParameter(_)));

        let e = parse("// only a comment\n").unwrap_err();
        assert_eq!(e.kind, MapErrorKind::EmptyGrid);

        let e = Map::from_file("/no/such/file.map").unwrap_err();
        assert!(e.to_string().contains("/no/such/file.map"));
    }

    #[test]
    fn builtin_maps_parse() {
        for (name, _) in builtin::MAPS {
            let m = Map::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&m.name, name);
        }
    }

    /// A 100×100 map (the limit) parses; 101×100 and a 1×10,001 corridor are
    /// errors that give the size and the limit, at the line where it was crossed.
    #[test]
    fn maps_above_the_cell_limit_are_refused() {
        let grid = |rows: usize, cols: usize| {
            let mut t = String::new();
            for r in 0..rows {
                for c in 0..cols {
                    t.push_str(match (r, c) {
                        (0, 0) => " S",
                        (0, 1) => " +1",
                        _ => " .",
                    });
                }
                t.push('\n');
            }
            t
        };
        assert!(parse(&grid(100, 100)).is_ok());
        let e = parse(&grid(101, 100)).unwrap_err();
        assert_eq!(
            e.kind,
            MapErrorKind::TooLarge {
                rows: 101,
                cols: 100
            }
        );
        assert_eq!(e.line, 101);
        let msg = e.to_string();
        assert!(
            msg.contains("101×100 = 10100 cells") && msg.contains("limit of 10000"),
            "{msg}"
        );
        let e = parse(&grid(1, MAX_CELLS + 1)).unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(e.to_string().contains("1×10001"), "{e}");
    }
}
