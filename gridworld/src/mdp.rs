//! The gridworld as a Markov decision process: states, actions, P(s'|s,a), rewards.
//!
//! Semantics (fixed):
//! - four actions: up, down, left, right;
//! - moving into a wall or off the grid leaves the agent where it is;
//! - with slip probability p the agent moves in each perpendicular direction with
//!   probability p/2 (and as intended with probability 1 − p);
//! - entering a terminal cell (points or the dragon) pays its value and ends the episode;
//! - every other move (bumping into a wall included) pays the step reward.
//!
//! Every non-wall cell is a state, indexed row-major. Terminal states are absorbing
//! and have no outgoing transitions (their value is 0).

use crate::map::{Cell, Map};
use ndarray::{Array2, Array3};
use serde::{Deserialize, Serialize};

/// The four moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    Up,
    Down,
    Left,
    Right,
}

impl Action {
    /// All actions, in index order.
    pub const ALL: [Action; 4] = [Action::Up, Action::Down, Action::Left, Action::Right];

    /// Index 0..4 (the network's output unit for this action).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Action from its index.
    ///
    /// # Panics
    /// If `i >= 4`.
    pub fn from_index(i: usize) -> Action {
        Self::ALL[i]
    }

    /// Row and column offset.
    pub fn delta(self) -> (i64, i64) {
        match self {
            Action::Up => (-1, 0),
            Action::Down => (1, 0),
            Action::Left => (0, -1),
            Action::Right => (0, 1),
        }
    }

    /// The two directions at right angles (where a slip sends the agent).
    pub fn perpendicular(self) -> [Action; 2] {
        match self {
            Action::Up | Action::Down => [Action::Left, Action::Right],
            Action::Left | Action::Right => [Action::Up, Action::Down],
        }
    }

    /// An arrow for text rendering.
    pub fn arrow(self) -> char {
        match self {
            Action::Up => '↑',
            Action::Down => '↓',
            Action::Left => '←',
            Action::Right => '→',
        }
    }

    /// Lower-case name (`up`, `down`, `left`, `right`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::Left => "left",
            Action::Right => "right",
        }
    }
}

/// One possible outcome of taking an action in a state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub next: usize,
    pub prob: f64,
    pub reward: f64,
    /// The next state is terminal (the episode ends).
    pub terminal: bool,
}

/// The MDP built from a [`Map`]: state indexing and the transition table.
#[derive(Debug, Clone)]
pub struct GridWorld {
    pub map: Map,
    cells: Vec<(usize, usize)>,
    index: Vec<Option<usize>>,
    /// CSR layout: the outcomes of `(s, a)` are `outcomes[offsets[4s+a]..offsets[4s+a+1]]`.
    offsets: Vec<usize>,
    outcomes: Vec<Transition>,
}

impl GridWorld {
    /// Build the state space and the transition table of `map`.
    pub fn new(map: Map) -> Self {
        let mut cells = Vec::new();
        let mut index = vec![None; map.rows * map.cols];
        for r in 0..map.rows {
            for c in 0..map.cols {
                if map.cell(r, c) != Cell::Wall {
                    index[r * map.cols + c] = Some(cells.len());
                    cells.push((r, c));
                }
            }
        }
        let mut world = GridWorld {
            map,
            cells,
            index,
            offsets: vec![0],
            outcomes: Vec::new(),
        };
        for s in 0..world.cells.len() {
            for a in Action::ALL {
                let outs = world.compute_outcomes(s, a);
                world.outcomes.extend(outs);
                world.offsets.push(world.outcomes.len());
            }
        }
        world
    }

    /// Load a shipped map by name or a map file, and build its MDP.
    pub fn load(name_or_path: &str) -> Result<Self, crate::map::MapError> {
        Map::load(name_or_path).map(Self::new)
    }

    fn compute_outcomes(&self, s: usize, a: Action) -> Vec<Transition> {
        if self.is_terminal(s) {
            return Vec::new();
        }
        let p = self.map.params.slip;
        let mut moves: Vec<(Action, f64)> = vec![(a, 1.0 - p)];
        for side in a.perpendicular() {
            moves.push((side, p / 2.0));
        }
        let mut outs: Vec<Transition> = Vec::new();
        for (dir, prob) in moves {
            if prob <= 0.0 {
                continue;
            }
            let next = self.move_from(s, dir);
            let (r, c) = self.cells[next];
            let t = Transition {
                next,
                prob,
                reward: self.map.entry_reward(r, c),
                terminal: self.map.cell(r, c).is_terminal(),
            };
            match outs.iter_mut().find(|o| o.next == next) {
                Some(o) => o.prob += prob,
                None => outs.push(t),
            }
        }
        outs
    }

    /// Deterministic result of moving in direction `dir` from `s` (no slip).
    pub fn move_from(&self, s: usize, dir: Action) -> usize {
        let (r, c) = self.cells[s];
        let (dr, dc) = dir.delta();
        match self.map.passable_offset(r, c, dr, dc) {
            Some((nr, nc)) => {
                self.index[nr * self.map.cols + nc].expect("non-wall cell has a state")
            }
            None => s,
        }
    }

    /// Number of states (non-wall cells).
    pub fn n_states(&self) -> usize {
        self.cells.len()
    }

    /// Number of actions (4).
    pub fn n_actions(&self) -> usize {
        4
    }

    /// Discount factor γ of the map.
    pub fn gamma(&self) -> f64 {
        self.map.params.gamma
    }

    /// `(row, col)` of state `s`.
    pub fn cell_of(&self, s: usize) -> (usize, usize) {
        self.cells[s]
    }

    /// State index of `(row, col)`, `None` for a wall or off the grid.
    pub fn state_of(&self, row: usize, col: usize) -> Option<usize> {
        if row >= self.map.rows || col >= self.map.cols {
            return None;
        }
        self.index[row * self.map.cols + col]
    }

    /// The start state.
    pub fn start_state(&self) -> usize {
        let (r, c) = self.map.start;
        self.state_of(r, c).expect("start is not a wall")
    }

    /// Whether `s` is terminal (points or the dragon).
    pub fn is_terminal(&self, s: usize) -> bool {
        let (r, c) = self.cells[s];
        self.map.cell(r, c).is_terminal()
    }

    /// The possible outcomes of action `a` in state `s` (empty for terminal states).
    pub fn transitions(&self, s: usize, a: Action) -> &[Transition] {
        let i = 4 * s + a.index();
        &self.outcomes[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Dense P[s, a, s'] (for teaching; use [`Self::transitions`] in algorithms).
    pub fn transition_matrix(&self) -> Array3<f64> {
        let n = self.n_states();
        let mut p = Array3::zeros((n, 4, n));
        for s in 0..n {
            for a in Action::ALL {
                for t in self.transitions(s, a) {
                    p[[s, a.index(), t.next]] += t.prob;
                }
            }
        }
        p
    }

    /// Expected immediate reward R[s, a] = Σ_s' P(s'|s,a) r(s').
    pub fn expected_rewards(&self) -> Array2<f64> {
        let n = self.n_states();
        let mut r = Array2::zeros((n, 4));
        for s in 0..n {
            for a in Action::ALL {
                r[[s, a.index()]] = self
                    .transitions(s, a)
                    .iter()
                    .map(|t| t.prob * t.reward)
                    .sum();
            }
        }
        r
    }

    /// Non-terminal states reachable from the start under some policy.
    pub fn reachable_states(&self) -> Vec<usize> {
        let mut seen = vec![false; self.n_states()];
        let mut stack = vec![self.start_state()];
        seen[self.start_state()] = true;
        while let Some(s) = stack.pop() {
            for a in Action::ALL {
                for t in self.transitions(s, a) {
                    if !seen[t.next] {
                        seen[t.next] = true;
                        stack.push(t.next);
                    }
                }
            }
        }
        (0..self.n_states())
            .filter(|&s| seen[s] && !self.is_terminal(s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_sum_to_one_and_walls_bounce() {
        let w = GridWorld::load("aima").unwrap();
        assert_eq!(w.n_states(), 11);
        for s in 0..w.n_states() {
            for a in Action::ALL {
                let total: f64 = w.transitions(s, a).iter().map(|t| t.prob).sum();
                if w.is_terminal(s) {
                    assert_eq!(total, 0.0);
                } else {
                    assert!((total - 1.0).abs() < 1e-12);
                }
            }
        }
        // Start (bottom-left) moving left: bump (0.8) + slip down bumps (0.1) + slip up (0.1).
        let s = w.start_state();
        let up = w.state_of(1, 0).unwrap();
        let outs = w.transitions(s, Action::Left);
        let stay = outs.iter().find(|t| t.next == s).unwrap();
        assert!((stay.prob - 0.9).abs() < 1e-12 && stay.reward == -0.04);
        let moved = outs.iter().find(|t| t.next == up).unwrap();
        assert!((moved.prob - 0.1).abs() < 1e-12);
        // Entering +1 pays 1 and terminates.
        let s23 = w.state_of(0, 2).unwrap();
        let t = w
            .transitions(s23, Action::Right)
            .iter()
            .find(|t| t.terminal)
            .unwrap();
        assert_eq!((t.reward, t.prob), (1.0, 0.8));
    }
}
