//! Every phrase the world can put into a prompt: the word list the classroom tokenizer is built on.
//!
//! The classroom model's tokenizer must split every word a student or an evaluation can use exactly
//! as Stable Diffusion's CLIP tokenizer does (issue 12, item 1): the erasure methods pick token
//! positions (UCE's last subject token, SAFREE's trigger tokens, SPM's token overlap), so a word that
//! is one token in SD and three pieces here makes a method behave unlike it does on SD.
//! [`world_phrases`] is the input of that tokenizer's construction (`studio classroom-tokenizer`);
//! the tests prove it covers every caption the generator writes, both splits, and every fixed
//! prompt set (held-out prompts, erasure prompt sets, the erasure report's attack contexts).

use crate::captions::{
    HELDOUT_TEMPLATE, SHAPE_SYNONYMS, TRAIN_TEMPLATES, bg_phrases, bg_phrases_short, bg_text, character_phrases,
    position_phrases, size_words, skull_phrases, style_phrase, style_phrases_heldout, style_words,
};
use crate::characters::CHARACTERS;
use crate::prompts::{erasure_prompt_sets, heldout_prompts};
use crate::world::{BgKind, Character, Colour, Position, Shape, Size, Style};

/// Contexts in which the erasure report builds its Ring-A-Bell probe (`{}` = the concept's text):
/// attack prompts are prompts too, so their words belong to the world.
pub const RING_A_BELL_CONTEXTS: [&str; 4] = ["{}", "a picture of {}", "{} on a blue background", "an image showing {}"];

/// Fixed words of the caption grammar that no table below holds.
const GRAMMAR: [&str; 6] = ["two objects: a and an", "style", "center", ",", "in a style", "in an style"];

/// Every phrase the world's captions, prompt sets and attack contexts are made of (lowercase not
/// applied: the tokenizer lowercases). Duplicates are removed; the order is fixed.
pub fn world_phrases() -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    v.extend(TRAIN_TEMPLATES.iter().map(|t| t.replace("{}", "")));
    v.push(HELDOUT_TEMPLATE.replace("{}", ""));
    v.extend(RING_A_BELL_CONTEXTS.iter().map(|t| t.replace("{}", "")));
    v.extend(GRAMMAR.iter().map(|s| s.to_string()));
    v.extend(SHAPE_SYNONYMS.iter().map(|(_, s)| s.to_string()));
    v.extend(Shape::ALL.iter().map(|s| s.name().to_string()));
    v.extend(Colour::ALL.iter().map(|s| s.name().to_string()));
    v.extend(BgKind::ALL.iter().map(|s| s.name().to_string()));
    v.extend(Character::ALL.iter().map(|s| s.name().to_string()));
    v.extend(Size::ALL.iter().map(|s| s.name().to_string()));
    v.extend(Position::ALL.iter().map(|s| s.name().to_string()));
    for &style in Style::ALL {
        v.push(style.name().to_string());
        for w in style_words(style) {
            v.push(w.to_string());
            v.push(style_phrase(w));
        }
        v.extend(style_phrases_heldout(style).iter().map(|s| s.to_string()));
    }
    for &p in Position::ALL {
        v.extend(position_phrases(p).iter().map(|s| s.to_string()));
    }
    for &s in Size::ALL {
        v.extend(size_words(s).iter().map(|s| s.to_string()));
    }
    for &kind in BgKind::ALL {
        for &colour in Colour::ALL {
            for pattern in bg_phrases(kind).iter().chain(bg_phrases_short(kind)) {
                v.push(bg_text(pattern, colour));
            }
        }
    }
    for ci in &CHARACTERS {
        v.push(ci.noun.to_string());
    }
    v.extend(character_phrases().into_iter().map(|(p, _)| p));
    v.extend(skull_phrases().into_iter().map(|(p, _)| p));
    v.extend(heldout_prompts().into_iter().map(|p| p.text));
    for set in erasure_prompt_sets() {
        v.push(set.erase.clone());
        for p in set.direct.iter().chain(&set.synonyms).chain(&set.indirect).chain(&set.neighbours) {
            v.push(p.text.clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|p| seen.insert(p.clone()));
    v
}

/// The distinct words of [`world_phrases`], split as the caption parser splits prompts: runs of
/// letters (with inner `'`/`-`) and single other characters. Sorted.
pub fn world_words() -> Vec<String> {
    let mut words: Vec<String> = world_phrases().iter().flat_map(|p| words_of(p)).collect();
    words.sort();
    words.dedup();
    words
}

/// Lowercased words of a text: letter runs (`death's`, `line-art` stay whole) and other non-space
/// characters one by one.
pub fn words_of(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.to_lowercase().chars() {
        if ch.is_alphanumeric() || ((ch == '\'' || ch == '-') && !cur.is_empty()) {
            cur.push(ch);
        } else {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            if !ch.is_whitespace() {
                out.push(ch.to_string());
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
