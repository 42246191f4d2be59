//! The small world the later rungs talk about: people, their pets, colours and
//! favourite places, generated deterministically from a seed.
//!
//! Rung 5 asks questions about it and judges answers against it; the pre-training
//! corpus and demonstrations of rungs 3–4 are meant to describe the same world.

use gridworld::Rng;
use serde::{Deserialize, Serialize};

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

/// What the world says about one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub pet: String,
    pub pet_colour: String,
    pub favourite_place: String,
}

/// The world: a list of people and their facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct World {
    pub people: Vec<Person>,
}

impl World {
    /// The world of seed `seed` (the project uses seed 0).
    pub fn generate(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let people = PEOPLE
            .iter()
            .map(|name| Person {
                name: name.to_string(),
                pet: PETS[rng.below(PETS.len())].to_string(),
                pet_colour: COLOURS[rng.below(COLOURS.len())].to_string(),
                favourite_place: PLACES[rng.below(PLACES.len())].to_string(),
            })
            .collect();
        Self { people }
    }

    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }
}
