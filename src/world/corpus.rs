//! The pre-training corpus: simple English about the small world — facts,
//! short stories, dialogues, general knowledge about animals and colours, and
//! small sums — written by templates from a seeded random stream, so the same
//! seed always gives the same text.
//!
//! A model of a few million parameters trained on it for a few CPU minutes
//! writes fluent sentences and picks up the world's facts (Mia's pet, Leo's
//! favourite place), which the fine-tuning and feedback rungs then ask about.

use super::{Person, World, PLACES};
use gridworld::Rng;
use std::fmt::Write as _;

/// The separator written between documents in the corpus files.
pub const DOCUMENT_SEPARATOR: &str = "<|endoftext|>";

const NUMBERS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
];
const SOUNDS: &[(&str, &str)] = &[
    ("cat", "meow"),
    ("dog", "woof"),
    ("rabbit", "nothing at all, it just twitches its nose"),
    ("parrot", "hello"),
    ("turtle", "nothing, it is very quiet"),
    ("hamster", "squeak"),
];
const PET_LIKES: &[(&str, &str)] = &[
    ("cat", "sleep in the sun"),
    ("dog", "run after a ball"),
    ("rabbit", "eat green leaves"),
    ("parrot", "sing in the morning"),
    ("turtle", "swim slowly"),
    ("hamster", "run in its wheel"),
];
const THINGS: &[(&str, &str)] = &[
    ("the sky", "blue"),
    ("grass", "green"),
    ("the sun", "yellow"),
    ("snow", "white"),
    ("a banana", "yellow"),
    ("a carrot", "orange"),
    ("a cherry", "red"),
    ("mud", "brown"),
    ("a plum", "purple"),
    ("a leaf", "green"),
];
const PLACE_HAS: &[(&str, &str)] = &[
    ("the park", "tall trees and a pond with ducks"),
    ("the library", "many books and quiet tables"),
    ("the farm", "cows, hens and a big red barn"),
    ("the lake", "cold water and small boats"),
    ("the market", "fruit stalls and busy people"),
    ("the beach", "soft sand and big waves"),
];
const WEATHER: &[&str] = &["sunny", "rainy", "windy", "cold", "warm", "cloudy"];
const TIMES: &[&str] = &[
    "One morning",
    "One day",
    "Last week",
    "On Saturday",
    "After school",
    "On Sunday",
];
const FEELINGS: &[&str] = &["happy", "tired", "excited", "proud", "calm", "glad"];
const OBJECTS: &[&str] = &["apples", "stones", "books", "shells", "flowers", "cookies"];

fn pick<'a>(rng: &mut Rng, items: &'a [&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// "1 apple" / "3 apples" (the objects are all regular "-s" plurals).
fn count(n: usize, plural: &str) -> String {
    if n == 1 {
        format!("1 {}", plural.strip_suffix('s').unwrap_or(plural))
    } else {
        format!("{n} {plural}")
    }
}

fn lookup<'a>(table: &'a [(&'a str, &'a str)], key: &str) -> &'a str {
    table
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| *v)
        .unwrap_or("")
}

/// Facts about one person, in shuffled order and varied wording.
pub fn facts(p: &Person, rng: &mut Rng) -> String {
    let (he, his) = (p.pronoun(), p.possessive());
    let mut lines = vec![
        match rng.below(3) {
            0 => format!("{} has a {} {}.", p.name, p.pet_colour, p.pet),
            1 => format!("{}'s pet is a {} {}.", p.name, p.pet_colour, p.pet),
            _ => format!(
                "{} has a pet {}. The {} is {}.",
                p.name, p.pet, p.pet, p.pet_colour
            ),
        },
        match rng.below(2) {
            0 => format!("{}'s favourite place is {}.", p.name, p.favourite_place),
            _ => format!(
                "{} likes to go to {} more than anywhere else.",
                p.name, p.favourite_place
            ),
        },
        format!("{} is {} years old.", p.name, NUMBERS[p.age as usize]),
        match rng.below(2) {
            0 => format!("{}'s favourite food is {}.", p.name, p.favourite_food),
            _ => format!("{} loves to eat {}.", p.name, p.favourite_food),
        },
        format!("{}'s best friend is {}.", p.name, p.best_friend),
        format!(
            "{} {} likes to {}.",
            capitalise(his),
            p.pet,
            lookup(PET_LIKES, &p.pet)
        ),
    ];
    rng.shuffle(&mut lines);
    let keep = 3 + rng.below(lines.len() - 2);
    lines.truncate(keep);
    if rng.below(2) == 0 {
        lines.push(format!(
            "{} is a kind child, and {} is always {}.",
            p.name,
            he,
            pick(rng, FEELINGS)
        ));
    }
    lines.join(" ")
}

/// A short story: a person takes the pet to a place, something happens, and
/// sometimes a small sum is worked out.
pub fn story(world: &World, rng: &mut Rng) -> String {
    let p = &world.people[rng.below(world.people.len())];
    let friend = world.person(&p.best_friend).expect("friend exists");
    let (he, his) = (p.pronoun(), p.possessive());
    let place = if rng.below(3) == 0 {
        pick(rng, PLACES)
    } else {
        p.favourite_place.as_str()
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "{}, it was {}. {} took {} {} {} to {}. ",
        pick(rng, TIMES),
        pick(rng, WEATHER),
        p.name,
        his,
        p.pet_colour,
        p.pet,
        place
    );
    let _ = write!(
        s,
        "{} has {}. ",
        capitalise(place),
        lookup(PLACE_HAS, place)
    );
    match rng.below(4) {
        0 => {
            let _ = write!(
                s,
                "There {} met {} best friend, {}, and {} {}. ",
                he,
                his,
                friend.name,
                friend.possessive(),
                friend.pet
            );
            let _ = write!(
                s,
                "The {} and the {} played together until the sun went down. ",
                p.pet, friend.pet
            );
        }
        1 => {
            let a = 1 + rng.below(6);
            let b = 1 + rng.below(6);
            let obj = pick(rng, OBJECTS);
            let _ = write!(
                s,
                "{} found {}. Then {} found {} more. Now {} has {}. ",
                p.name,
                count(a, obj),
                he,
                b,
                he,
                count(a + b, obj)
            );
        }
        2 => {
            let a = 3 + rng.below(8);
            let b = 1 + rng.below(a - 1);
            let obj = pick(rng, OBJECTS);
            let _ = write!(
                s,
                "{} had {}. {} gave {} of them to {}. {} had {} left. ",
                p.name,
                count(a, obj),
                capitalise(he),
                b,
                friend.name,
                capitalise(he),
                count(a - b, obj)
            );
        }
        _ => {
            let _ = write!(
                s,
                "The {} said {}. {} laughed and gave it some {}. ",
                p.pet,
                lookup(SOUNDS, &p.pet),
                p.name,
                if p.pet == "dog" || p.pet == "cat" {
                    "water"
                } else {
                    "food"
                }
            );
        }
    }
    let _ = write!(
        s,
        "In the evening {} went home and ate {}. {} felt {}.",
        p.name,
        p.favourite_food,
        capitalise(he),
        pick(rng, FEELINGS)
    );
    s
}

/// A dialogue between two people about their pets, places and food.
pub fn dialogue(world: &World, rng: &mut Rng) -> String {
    let (i, j) = rng.distinct_pair(world.people.len());
    let (a, b) = (&world.people[i], &world.people[j]);
    let mut lines = vec![format!("{}: Hello, {}! How are you?", a.name, b.name)];
    lines.push(format!(
        "{}: I am {}, thank you.",
        b.name,
        pick(rng, FEELINGS)
    ));
    let mut topics = [0, 1, 2, 3];
    rng.shuffle(&mut topics);
    for &t in &topics[..2 + rng.below(3)] {
        match t {
            0 => {
                lines.push(format!("{}: What pet do you have?", a.name));
                lines.push(format!("{}: I have a {} {}.", b.name, b.pet_colour, b.pet));
            }
            1 => {
                lines.push(format!("{}: Where do you like to go?", a.name));
                lines.push(format!(
                    "{}: My favourite place is {}.",
                    b.name, b.favourite_place
                ));
            }
            2 => {
                lines.push(format!("{}: What do you like to eat?", a.name));
                lines.push(format!("{}: I love {}.", b.name, b.favourite_food));
            }
            _ => {
                lines.push(format!("{}: How old are you?", a.name));
                lines.push(format!("{}: I am {} years old.", b.name, b.age));
            }
        }
    }
    lines.push(format!("{}: Goodbye, {}!", a.name, b.name));
    lines.join("\n")
}

/// General knowledge: animal sounds, colours of things, what places have.
pub fn knowledge(rng: &mut Rng) -> String {
    let mut lines = Vec::new();
    for _ in 0..3 + rng.below(3) {
        lines.push(match rng.below(4) {
            0 => {
                let (animal, sound) = SOUNDS[rng.below(SOUNDS.len())];
                format!("A {animal} says {sound}.")
            }
            1 => {
                let (thing, colour) = THINGS[rng.below(THINGS.len())];
                format!("{} is {colour}.", capitalise(thing))
            }
            2 => {
                let (place, has) = PLACE_HAS[rng.below(PLACE_HAS.len())];
                format!("{} has {has}.", capitalise(place))
            }
            _ => {
                let (animal, likes) = PET_LIKES[rng.below(PET_LIKES.len())];
                format!("A {animal} likes to {likes}.")
            }
        });
    }
    lines.join(" ")
}

/// Small sums and differences, in digits and in words.
pub fn arithmetic(rng: &mut Rng) -> String {
    let mut lines = Vec::new();
    for _ in 0..3 + rng.below(3) {
        let a = rng.below(10);
        let b = rng.below(10);
        lines.push(match rng.below(3) {
            0 => format!("{a} plus {b} is {}.", a + b),
            1 => format!(
                "{} minus {} is {}.",
                a.max(b),
                a.min(b),
                a.max(b) - a.min(b)
            ),
            _ if a + b <= 12 => format!(
                "{} and {} make {}.",
                capitalise(NUMBERS[a]),
                NUMBERS[b],
                NUMBERS[a + b]
            ),
            _ => format!("{a} plus {b} is {}.", a + b),
        });
    }
    lines.join(" ")
}

/// One document of a random kind (stories most often).
pub fn document(world: &World, rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => story(world, rng),
        4 | 5 => {
            let p = &world.people[rng.below(world.people.len())];
            facts(p, rng)
        }
        6 | 7 => dialogue(world, rng),
        8 => knowledge(rng),
        _ => arithmetic(rng),
    }
}

/// A corpus's documents, split into training and held-out documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Documents {
    /// Documents the model learns from.
    pub train: Vec<String>,
    /// Held-out documents, for the validation loss.
    pub valid: Vec<String>,
}

/// The corpus: `n_documents` documents from `seed`, of which every 20th goes
/// to the held-out split.
pub fn generate(world: &World, seed: u64, n_documents: usize) -> Documents {
    let mut rng = Rng::new(seed);
    let mut train = Vec::new();
    let mut valid = Vec::new();
    for i in 0..n_documents {
        let doc = document(world, &mut rng);
        if i % 20 == 19 {
            valid.push(doc);
        } else {
            train.push(doc);
        }
    }
    Documents { train, valid }
}

/// Documents joined as they are stored on disk: each followed by a line
/// holding [`DOCUMENT_SEPARATOR`].
pub fn to_text(docs: &[String]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str(d);
        out.push('\n');
        out.push_str(DOCUMENT_SEPARATOR);
        out.push('\n');
    }
    out
}

/// Split text stored by [`to_text`] back into documents.
pub fn from_text(text: &str) -> Vec<String> {
    text.split(DOCUMENT_SEPARATOR)
        .map(|d| d.trim_matches('\n').to_string())
        .filter(|d| !d.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::PETS;

    #[test]
    fn singular_and_plural() {
        assert_eq!(count(1, "cookies"), "1 cookie");
        assert_eq!(count(1, "apples"), "1 apple");
        assert_eq!(count(3, "shells"), "3 shells");
    }

    #[test]
    fn deterministic_and_consistent_with_the_world() {
        let world = World::generate(0);
        let Documents {
            train: a,
            valid: va,
        } = generate(&world, 1, 400);
        let Documents { train: b, .. } = generate(&world, 1, 400);
        assert_eq!(a, b);
        assert_eq!(va.len(), 20);
        assert_eq!(from_text(&to_text(&a)), a);
        // Every statement of a pet is true in the world.
        for p in &world.people {
            let other_pets: Vec<String> = PETS
                .iter()
                .filter(|&&x| x != p.pet)
                .map(|x| format!("{} has a {} {x}.", p.name, p.pet_colour))
                .collect();
            let text = to_text(&a);
            assert!(
                other_pets.iter().all(|c| !text.contains(c.as_str())),
                "false claim about {}",
                p.name
            );
        }
    }
}
