//! The small world the later rungs talk about: people, their pets, colours and
//! favourite places, generated deterministically from a seed.
//!
//! The pre-training corpus of rung 3 ([`corpus`]) tells stories about it, the
//! demonstrations of rung 4 answer questions about it, and rung 5 judges
//! answers against it.

use gridworld::Rng;
use serde::{Deserialize, Serialize};

pub mod corpus;
pub mod demonstrations;
pub mod language;

pub const PEOPLE: &[&str] = &["Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Tom"];
pub const PETS: &[&str] = &["cat", "dog", "rabbit", "parrot", "turtle", "hamster"];
pub const COLOURS: &[&str] = &[
    "red", "blue", "green", "yellow", "orange", "purple", "brown", "white",
];
pub const PLACES: &[&str] = &[
    "the park",
    "the library",
    "the farm",
    "the lake",
    "the market",
    "the beach",
];

pub const FOODS: &[&str] = &[
    "apples", "bananas", "carrots", "cheese", "soup", "pancakes", "rice", "cherries",
];

/// What the world says about one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub pet: String,
    pub pet_colour: String,
    pub favourite_place: String,
    /// Age in years (6–12).
    pub age: u32,
    pub favourite_food: String,
    /// Another person's name.
    pub best_friend: String,
}

impl Person {
    /// "she" or "he".
    pub fn pronoun(&self) -> &'static str {
        if FEMALE.contains(&self.name.as_str()) {
            "she"
        } else {
            "he"
        }
    }

    /// "her" or "his".
    pub fn possessive(&self) -> &'static str {
        if FEMALE.contains(&self.name.as_str()) {
            "her"
        } else {
            "his"
        }
    }
}

const FEMALE: &[&str] = &["Mia", "Ava", "Zoe", "Ivy"];

/// The world: a list of people and their facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    pub people: Vec<Person>,
}

impl World {
    /// The world of seed `seed` (the project uses seed 0).
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        // A second stream for the facts added later, so the first ones keep
        // their values for a given seed.
        let mut more = Rng::new(seed ^ 0x5EED_F00D);
        let people = PEOPLE
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let friend = (i + 1 + more.below(PEOPLE.len() - 1)) % PEOPLE.len();
                Person {
                    name: name.to_string(),
                    pet: PETS[rng.below(PETS.len())].to_string(),
                    pet_colour: COLOURS[rng.below(COLOURS.len())].to_string(),
                    favourite_place: PLACES[rng.below(PLACES.len())].to_string(),
                    age: 6 + more.below(7) as u32,
                    favourite_food: FOODS[more.below(FOODS.len())].to_string(),
                    best_friend: PEOPLE[friend].to_string(),
                }
            })
            .collect();
        Self { people }
    }

    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }
}
