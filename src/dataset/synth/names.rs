//! Deterministic pseudo-word titles and artist names ("Velvet Harbor", "The Lumen Trio").

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const ONSETS: [&str; 27] = [
    "b", "br", "c", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "k", "l", "m", "n", "p", "pr", "r",
    "s", "st", "sh", "t", "tr", "v", "w", "z", "",
];
const VOWELS: [&str; 10] = ["a", "e", "i", "o", "u", "a", "ai", "ea", "ou", "io"];
const CODAS: [&str; 12] = ["", "", "n", "r", "l", "m", "s", "th", "nd", "rk", "x", "t"];
const WORDS: [&str; 40] = [
    "Harbor",
    "Velvet",
    "Echo",
    "River",
    "Signal",
    "Lantern",
    "Meadow",
    "Circuit",
    "Ember",
    "Glass",
    "Neon",
    "Paper",
    "Winter",
    "Orbit",
    "Hollow",
    "Silver",
    "Cinder",
    "Tide",
    "Static",
    "Juniper",
    "Atlas",
    "Comet",
    "Marble",
    "Willow",
    "Copper",
    "Midnight",
    "Garden",
    "Drift",
    "Mirror",
    "Canyon",
    "Lumen",
    "Harvest",
    "Falcon",
    "Summer",
    "Ivory",
    "Thunder",
    "Saffron",
    "Coral",
    "Engine",
    "Satellite",
];
const ENSEMBLES: [&str; 10] = [
    "Trio",
    "Quartet",
    "Collective",
    "Band",
    "Ensemble",
    "Orchestra",
    "Club",
    "Sound System",
    "Brothers",
    "Sisters",
];

/// A pronounceable invented word of two or three syllables, capitalised.
fn pseudo_word(rng: &mut ChaCha8Rng) -> String {
    let syllables = rng.gen_range(2..=3);
    let mut w = String::new();
    for i in 0..syllables {
        w.push_str(ONSETS.choose(rng).expect("non-empty"));
        w.push_str(VOWELS.choose(rng).expect("non-empty"));
        if i + 1 == syllables || rng.gen_bool(0.3) {
            w.push_str(CODAS.choose(rng).expect("non-empty"));
        }
    }
    capitalise(&w)
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn word(rng: &mut ChaCha8Rng) -> String {
    if rng.gen_bool(0.5) {
        WORDS.choose(rng).expect("non-empty").to_string()
    } else {
        pseudo_word(rng)
    }
}

pub(super) fn title(rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(1..=3);
    (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
}

pub(super) fn artist(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..5) {
        0 => format!(
            "The {} {}",
            word(rng),
            ENSEMBLES.choose(rng).expect("non-empty")
        ),
        1 => format!("DJ {}", pseudo_word(rng)),
        2 => format!(
            "{} & the {}s",
            pseudo_word(rng),
            WORDS.choose(rng).expect("non-empty")
        ),
        _ => format!("{} {}", pseudo_word(rng), pseudo_word(rng)),
    }
}
