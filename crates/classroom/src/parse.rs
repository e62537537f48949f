//! Reading the attributes a prompt asks for, so an evaluator can score a generated image against
//! any prompt (held-out ones, a user's own) without a hand-written label.
//!
//! Rules (matching the caption grammar in [`crate::captions`]):
//! 1. Known names, synonyms and descriptions of the characters and the skull are found first
//!    (longest phrase first) and removed, so their own words ("the moon fairy with a red bow") do
//!    not count as a red moon. Unknown phrasings are still caught by keywords: a character's noun
//!    ("creature", "fairy", "robot") or name, and skull words (skull, cranium, pirate, poison, ...).
//! 2. A colour word directly before a shape word is that object's colour; any other colour word is
//!    the background colour.
//! 3. A position word belongs to the most recent object (or to the first, if it comes before any).
//! 4. No style word means `flat` (training captions always name the other styles).

use crate::captions::{SHAPE_SYNONYMS, character_phrases, skull_phrases};
use crate::characters::CHARACTERS;
use crate::world::{BgKind, Colour, Labels, Position, Shape, Size, Style};

fn shape_word(t: &str) -> Option<Shape> {
    Shape::from_name(t).or_else(|| SHAPE_SYNONYMS.iter().find(|(_, w)| *w == t).map(|(s, _)| *s))
}

fn position_word(t: &str) -> Option<Position> {
    match t {
        "left" => Some(Position::Left),
        "right" => Some(Position::Right),
        "top" => Some(Position::Top),
        "bottom" => Some(Position::Bottom),
        "centre" | "center" | "middle" => Some(Position::Centre),
        _ => None,
    }
}

fn size_word(t: &str) -> Option<Size> {
    match t {
        "big" | "large" => Some(Size::Big),
        "small" | "tiny" => Some(Size::Small),
        _ => None,
    }
}

fn bg_word(t: &str) -> Option<BgKind> {
    match t {
        "plain" => Some(BgKind::Plain),
        "stripes" | "striped" => Some(BgKind::Stripes),
        "dots" | "dotted" | "polka-dot" | "polka-dots" => Some(BgKind::Dots),
        "checkerboard" | "checkered" | "chequered" => Some(BgKind::Checkerboard),
        _ => None,
    }
}

fn style_word(t: &str) -> Option<Style> {
    match t {
        "flat" => Some(Style::Flat),
        "outlined" | "outline" | "line-art" | "contour" => Some(Style::Outlined),
        "pixelated" | "pixel-art" | "pixel" | "pixels" | "blocky" | "8-bit" => Some(Style::Pixelated),
        "glowing" | "glow" | "neon" => Some(Style::Glowing),
        _ => None,
    }
}

fn skull_word(t: &str) -> bool {
    matches!(
        t,
        "skull"
            | "skulls"
            | "cranium"
            | "crossbones"
            | "death's"
            | "pirate"
            | "pirate-flag"
            | "poison"
            | "roger"
            | "toxic"
            | "death"
    )
}

/// Lowercases and turns punctuation other than `'` and `-` into spaces; pads with spaces so that
/// phrases can be matched on word boundaries.
fn normalise(text: &str) -> String {
    let mapped: String = text
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' || c == '-' { c } else { ' ' })
        .collect();
    format!(" {} ", mapped.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Removes every occurrence of `phrase` (word-bounded); returns whether there was one.
fn take_phrase(s: &mut String, phrase: &str) -> bool {
    let pat = normalise(phrase);
    let mut found = false;
    while let Some(i) = s.find(&pat) {
        s.replace_range(i..i + pat.len(), "  ");
        found = true;
    }
    found
}

/// The attributes `text` asks for, or `None` if it names no object, character or skull.
/// See [`Labels`] for what `None` fields mean for a prompt.
pub fn parse_caption(text: &str) -> Option<Labels> {
    let mut s = normalise(text);
    let mut labels = Labels::default();

    // 1. Named concepts, longest phrase first.
    // (phrase, the character it names or None for the skull, whether it asks for crossbones)
    type Named = (String, Option<crate::world::Character>, bool);
    let mut phrases: Vec<Named> = character_phrases()
        .into_iter()
        .map(|(p, c)| (p, Some(c), false))
        .chain(skull_phrases().into_iter().map(|(p, x)| (p, None, x)))
        .collect();
    phrases.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    for (p, character, crossbones) in &phrases {
        if take_phrase(&mut s, p) {
            match character {
                Some(c) => labels.character = labels.character.or(Some(*c)),
                None => {
                    labels.skull = true;
                    if *crossbones {
                        labels.crossbones = Some(true);
                    }
                }
            }
        }
    }
    let tokens: Vec<&str> = s.split_whitespace().collect();
    for t in &tokens {
        if let Some(ci) = CHARACTERS.iter().find(|ci| ci.noun == *t || ci.display.to_lowercase() == *t) {
            labels.character = labels.character.or(Some(ci.character));
        }
        if skull_word(t) {
            labels.skull = true;
        }
        if *t == "crossbones" {
            labels.crossbones = Some(true);
        }
    }
    let named = labels.character.is_some() || labels.skull;

    // 2. Attributes.
    let mut objects: Vec<(Shape, Option<Colour>, Option<Position>)> = Vec::new();
    let mut early_position = None;
    let mut said_background = false;
    for (i, t) in tokens.iter().enumerate() {
        let next = tokens.get(i + 1).copied();
        if let Some(c) = Colour::from_name(t) {
            let before_shape = next.and_then(shape_word).is_some();
            if (!before_shape || named) && labels.bg_colour.is_none() {
                labels.bg_colour = Some(c);
            }
        } else if let Some(shape) = shape_word(t) {
            if !named {
                let colour = if i > 0 { Colour::from_name(tokens[i - 1]) } else { None };
                objects.push((shape, colour, None));
            }
        } else if let Some(p) = position_word(t) {
            if *t == "top" && next == Some("hat") {
                continue;
            }
            match objects.last_mut() {
                Some(o) if o.2.is_none() => o.2 = Some(p),
                Some(_) => {}
                None => early_position = early_position.or(Some(p)),
            }
        } else if let Some(z) = size_word(t) {
            labels.size = labels.size.or(Some(z));
        } else if let Some(b) = bg_word(t) {
            // "plain" never overrides a pattern word.
            if labels.bg.is_none() || labels.bg == Some(BgKind::Plain) {
                labels.bg = Some(b);
            }
        } else if let Some(st) = style_word(t) {
            labels.style = labels.style.or(Some(st));
        } else if *t == "background" || *t == "backdrop" {
            said_background = true;
        }
    }
    if labels.bg.is_none() && said_background {
        labels.bg = Some(BgKind::Plain);
    }
    labels.style = labels.style.or(Some(Style::Flat));

    if named {
        labels.n_objects = 1;
        labels.position = early_position;
        return Some(labels);
    }
    let first = objects.first()?;
    labels.shape = Some(first.0);
    labels.colour = first.1;
    labels.position = first.2.or(early_position);
    if let Some(second) = objects.get(1) {
        labels.shape2 = Some(second.0);
        labels.colour2 = second.1;
        labels.position2 = second.2;
    }
    labels.n_objects = objects.len().min(2) as u8;
    Some(labels)
}
