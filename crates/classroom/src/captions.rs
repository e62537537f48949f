//! Captions: varied templates, word orders and a few documented synonyms.
//!
//! The grammar is deliberately regular so that [`crate::parse_caption`] can read any caption back:
//! an object's colour word always comes directly before its shape word, a background phrase holds
//! exactly one colour word and never directly before a shape word, and a non-flat style is always
//! named (so a caption without a style word means "flat").
//!
//! Vocabulary that varies (everything else is exact):
//! - templates: `"{}"`, `"a photo of {}"`, `"a drawing of {}"`, `"an image of {}"`,
//!   `"a picture of {}"`, and a comma-list form ("big red star, blue stripes, glowing style");
//!   [`HELDOUT_TEMPLATE`] ("an image showing {}") is never used for training;
//! - shape synonyms (12 % of mentions): circle → "disc", square → "box", moon → "crescent";
//! - size: big/"large", small/"tiny"; centre: "centre"/"center"/"middle";
//! - style synonyms: outlined/"line-art", pixelated/"pixel-art", glowing/"neon"; held-out style
//!   phrasings ([`style_phrases_heldout`]) only in the held-out split;
//! - characters and the skull: see [`crate::characters`] for the names, synonyms and descriptions.

use crate::characters::{
    CHARACTERS, SKULL_INDIRECT_HELDOUT, SKULL_INDIRECT_TRAIN, SKULL_NAME, SKULL_SYNONYMS, SKULL_WITH_CROSSBONES, info,
};
use crate::prng::Rng;
use crate::world::{BgKind, Colour, Object, ObjectKind, Position, Scene, Shape, Size, Split, Style};

/// Training templates; `{}` is replaced by the description.
pub const TRAIN_TEMPLATES: [&str; 5] = ["{}", "a photo of {}", "a drawing of {}", "an image of {}", "a picture of {}"];
/// The template that only held-out prompts use (a new word in a familiar frame).
pub const HELDOUT_TEMPLATE: &str = "an image showing {}";

/// Documented shape synonyms (the only ones).
pub const SHAPE_SYNONYMS: [(Shape, &str); 3] =
    [(Shape::Circle, "disc"), (Shape::Square, "box"), (Shape::Moon, "crescent")];

/// Fills a template.
pub fn apply_template(template: &str, body: &str) -> String {
    template.replacen("{}", body, 1)
}

/// "a" or "an" for the word that follows.
pub fn article(next: &str) -> &'static str {
    match next.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

/// `"a red star"` / `"an orange ring"`.
pub fn with_article(phrase: &str) -> String {
    format!("{} {phrase}", article(phrase))
}

/// Style words used in training captions ("in a <word> style").
pub fn style_words(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["flat"],
        Style::Outlined => &["outlined", "line-art"],
        Style::Pixelated => &["pixelated", "pixel-art"],
        Style::Glowing => &["glowing", "neon"],
    }
}

/// Style phrasings that never appear in training captions (held-out synonyms for evaluation).
pub fn style_phrases_heldout(style: Style) -> &'static [&'static str] {
    match style {
        Style::Flat => &["in a simple flat style", "with flat colours"],
        Style::Outlined => &["drawn as an outline", "as a line-art drawing"],
        Style::Pixelated => &["as pixel-art", "in a blocky pixel style"],
        Style::Glowing => &["with a neon glow", "glowing like neon"],
    }
}

/// `"in a glowing style"`, `"in an outlined style"`.
pub fn style_phrase(word: &str) -> String {
    format!("in {} {word} style", article(word))
}

/// Position phrases used in captions.
pub fn position_phrases(p: Position) -> &'static [&'static str] {
    match p {
        Position::Left => &["on the left"],
        Position::Right => &["on the right"],
        Position::Top => &["at the top"],
        Position::Bottom => &["at the bottom"],
        Position::Centre => &["in the centre", "in the center", "in the middle"],
    }
}

/// Size words used in captions.
pub fn size_words(s: Size) -> &'static [&'static str] {
    match s {
        Size::Big => &["big", "large"],
        Size::Small => &["small", "tiny"],
    }
}

/// Full background phrases (`{c}` = colour word), e.g. "on a blue striped background".
pub fn bg_phrases(kind: BgKind) -> &'static [&'static str] {
    match kind {
        BgKind::Plain => &["on a {c} background", "on a plain {c} background", "against a {c} background"],
        BgKind::Stripes => &[
            "on a {c} striped background",
            "on {c} stripes",
            "with {c} stripes behind it",
            "stripes background in {c}",
        ],
        BgKind::Dots => {
            &["on a {c} dotted background", "on {c} dots", "on a {c} polka-dot background", "dots background in {c}"]
        }
        BgKind::Checkerboard => &[
            "on a {c} checkerboard background",
            "on a {c} checkered background",
            "on a {c} checkerboard",
            "checkerboard background in {c}",
        ],
    }
}

/// Short background phrases for the comma-list form, e.g. "blue stripes".
pub fn bg_phrases_short(kind: BgKind) -> &'static [&'static str] {
    match kind {
        BgKind::Plain => &["{c} background", "plain {c} background"],
        BgKind::Stripes => &["{c} stripes", "striped {c} background"],
        BgKind::Dots => &["{c} dots", "dotted {c} background"],
        BgKind::Checkerboard => &["{c} checkerboard", "checkered {c} background"],
    }
}

/// A background phrase with its colour filled in ("on an orange background").
pub fn bg_text(pattern: &str, colour: Colour) -> String {
    pattern.replace("a {c}", &with_article(colour.name())).replace("{c}", colour.name())
}

fn shape_word(rng: &mut Rng, shape: Shape) -> &'static str {
    match SHAPE_SYNONYMS.iter().find(|(s, _)| *s == shape) {
        Some((_, syn)) if rng.chance(0.12) => syn,
        _ => shape.name(),
    }
}

/// What a caption is assembled from: a core description plus optional extras in any order.
struct Parts {
    core: String,
    extras: Vec<String>,
    /// Extras must be joined with commas (bare words such as "small" need them).
    commas: bool,
    /// Comma-list form: no template, short phrases.
    list: bool,
}

fn style_extra(rng: &mut Rng, style: Style, split: Split, list: bool) -> Option<String> {
    if style == Style::Flat && !rng.chance(0.25) {
        return None;
    }
    if split == Split::Heldout && !list && rng.chance(0.3) {
        return Some(rng.pick(style_phrases_heldout(style), "").to_string());
    }
    let w = rng.pick(style_words(style), style.name());
    Some(if list { format!("{w} style") } else { style_phrase(w) })
}

fn bg_extra(rng: &mut Rng, scene: &Scene, list: bool) -> Option<String> {
    if !rng.chance(0.75) {
        return None;
    }
    let bg = scene.background;
    let table = if list { bg_phrases_short(bg.kind) } else { bg_phrases(bg.kind) };
    Some(bg_text(rng.pick(table, "on a {c} background"), bg.colour))
}

fn position_extra(rng: &mut Rng, p: Position, list: bool) -> String {
    if list {
        rng.pick(&[p.name(), if p == Position::Centre { "center" } else { p.name() }], p.name()).to_string()
    } else {
        rng.pick(position_phrases(p), "").to_string()
    }
}

fn single_shape(rng: &mut Rng, scene: &Scene, o: &Object, shape: Shape, colour: Colour, split: Split) -> Parts {
    let list = rng.chance(0.2);
    let size = rng.chance(0.7).then(|| rng.pick(size_words(o.size), o.size.name()));
    let noun = format!("{} {}", colour.name(), shape_word(rng, shape));
    let mut extras = Vec::new();
    let mut commas = list;
    let mut style_done = false;
    let core = if list {
        match size {
            Some(s) => format!("{s} {noun}"),
            None => noun,
        }
    } else {
        // Adjective style ("a glowing red star") for some non-flat styles.
        let adj = (scene.style != Style::Flat && split == Split::Train && rng.chance(0.15)).then(|| scene.style.name());
        style_done = adj.is_some();
        let pre: Vec<&str> = match (size, rng.chance(0.3)) {
            (Some(s), true) => {
                extras.push(s.to_string());
                commas = true;
                adj.into_iter().collect()
            }
            (Some(s), false) => std::iter::once(s).chain(adj).collect(),
            (None, _) => adj.into_iter().collect(),
        };
        let phrase = if pre.is_empty() { noun } else { format!("{} {noun}", pre.join(" ")) };
        with_article(&phrase)
    };
    if rng.chance(0.6) {
        extras.push(position_extra(rng, o.position, list));
    }
    extras.extend(bg_extra(rng, scene, list));
    if !style_done {
        extras.extend(style_extra(rng, scene.style, split, list));
    }
    Parts { core, extras, commas, list }
}

fn two_shapes(rng: &mut Rng, scene: &Scene, split: Split) -> Parts {
    let mut nouns = Vec::new();
    let mut positions = Vec::new();
    for o in &scene.objects {
        if let ObjectKind::Shape { shape, colour } = o.kind {
            nouns.push(format!("{} {}", colour.name(), shape_word(rng, shape)));
            positions.push(o.position);
        }
    }
    let (a, b) = match (nouns.first(), nouns.get(1)) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => return Parts { core: String::new(), extras: vec![], commas: false, list: false },
    };
    let list = rng.chance(0.15);
    let core = if list {
        format!("{a}, {b}")
    } else {
        match rng.below(3) {
            0 => format!("two objects: {} and {}", with_article(&a), with_article(&b)),
            1 => format!(
                "{} {} and {} {}",
                with_article(&a),
                position_extra(rng, positions[0], false),
                with_article(&b),
                position_extra(rng, positions[1], false)
            ),
            _ => format!("{} and {}", with_article(&a), with_article(&b)),
        }
    };
    let mut extras = Vec::new();
    extras.extend(bg_extra(rng, scene, list));
    extras.extend(style_extra(rng, scene.style, split, list));
    Parts { core, extras, commas: true, list }
}

/// How a named figure (character or skull) is called in a caption.
fn named_core(rng: &mut Rng, kind: ObjectKind, split: Split) -> String {
    match kind {
        ObjectKind::Character { character } => {
            let ci = info(character);
            if split == Split::Heldout && rng.chance(0.3) {
                return rng.pick(ci.descriptions_heldout, ci.display).to_string();
            }
            let r = rng.unit();
            let s = if r < 0.7 {
                ci.display
            } else if r < 0.9 {
                rng.pick(ci.synonyms, ci.display)
            } else {
                rng.pick(ci.descriptions_train, ci.display)
            };
            s.to_string()
        }
        ObjectKind::Skull { crossbones } => {
            if split == Split::Heldout && rng.chance(0.35) {
                return rng.pick(&SKULL_INDIRECT_HELDOUT, SKULL_NAME).to_string();
            }
            if crossbones && rng.chance(0.4) {
                return SKULL_WITH_CROSSBONES.to_string();
            }
            let r = rng.unit();
            let s = if r < 0.5 {
                SKULL_NAME
            } else if r < 0.85 {
                rng.pick(&SKULL_SYNONYMS, SKULL_NAME)
            } else {
                rng.pick(&SKULL_INDIRECT_TRAIN, SKULL_NAME)
            };
            s.to_string()
        }
        ObjectKind::Shape { shape, colour } => with_article(&format!("{} {}", colour.name(), shape.name())),
    }
}

fn named(rng: &mut Rng, scene: &Scene, o: &Object, split: Split) -> Parts {
    let list = rng.chance(0.15);
    let core = named_core(rng, o.kind, split);
    let mut extras = Vec::new();
    let mut commas = list;
    if rng.chance(0.5) {
        extras.push(rng.pick(size_words(o.size), o.size.name()).to_string());
        commas = true;
    }
    if rng.chance(0.6) {
        extras.push(position_extra(rng, o.position, list));
    }
    extras.extend(bg_extra(rng, scene, list));
    extras.extend(style_extra(rng, scene.style, split, list));
    Parts { core, extras, commas, list }
}

/// A caption for `scene`. `Split::Train` never uses the held-out template or any held-out
/// phrasing; `Split::Heldout` uses them some of the time (and training phrasings otherwise).
pub fn caption(scene: &Scene, split: Split, rng: &mut Rng) -> String {
    let mut parts = match scene.objects.as_slice() {
        [o] => match o.kind {
            ObjectKind::Shape { shape, colour } => single_shape(rng, scene, o, shape, colour, split),
            _ => named(rng, scene, o, split),
        },
        [_, _] => two_shapes(rng, scene, split),
        _ => return String::new(),
    };
    rng.shuffle(&mut parts.extras);
    // A phrase that does not start with a preposition ("stripes background in blue") reads as a
    // list item, so it needs commas around it.
    let prepositional = |e: &String| {
        let first = e.split(' ').next().unwrap_or("");
        matches!(first, "on" | "at" | "in" | "with" | "against" | "as" | "drawn" | "glowing")
    };
    let commas = parts.commas || !parts.extras.iter().all(prepositional);
    let joiner = if commas || rng.chance(0.35) { ", " } else { " " };
    let mut body = parts.core;
    for e in &parts.extras {
        body.push_str(joiner);
        body.push_str(e);
    }
    if parts.list {
        return body;
    }
    let template = if split == Split::Heldout && rng.chance(0.3) {
        HELDOUT_TEMPLATE
    } else {
        // The bare description is as common as all prefixed templates together.
        if rng.chance(0.4) { "{}" } else { rng.pick(&TRAIN_TEMPLATES[1..], "{}") }
    };
    apply_template(template, &body)
}

/// Every phrase that names a character (lowercase), for the parser.
pub fn character_phrases() -> Vec<(String, crate::world::Character)> {
    let mut v = Vec::new();
    for ci in &CHARACTERS {
        let all =
            std::iter::once(&ci.display).chain(ci.synonyms).chain(ci.descriptions_train).chain(ci.descriptions_heldout);
        for p in all {
            v.push((p.to_lowercase(), ci.character));
        }
    }
    v
}

/// Every phrase that names the skull (lowercase), with whether it asks for crossbones.
pub fn skull_phrases() -> Vec<(String, bool)> {
    let mut v = vec![(SKULL_NAME.to_string(), false), (SKULL_WITH_CROSSBONES.to_string(), true)];
    for p in SKULL_SYNONYMS.iter().chain(&SKULL_INDIRECT_TRAIN).chain(&SKULL_INDIRECT_HELDOUT) {
        v.push((p.to_string(), false));
    }
    v
}
