//! Prompt adherence: did a generated image show what its prompt asked for, attribute by attribute,
//! as judged by the evaluator ([`crate::evaluator`]).
//!
//! A port of `score_image` and `adherence` in `scripts/classroom/train.py` (the rule recorded in
//! `models/classroom/metrics.json` → `heldout_prompts.scoring`), so that `studio eval-classroom`
//! and the training script count the same hits:
//! - `pred`: the evaluator's class name per head; `want`: the prompt's [`Labels`], where `None`
//!   means "not asked for" (not scored), except `character` (`None`: no character, scored as
//!   `character_absent`) and `skull` (`false`: no skull, scored as `skull_absent`);
//! - two-object prompts follow the evaluator's canonical order (left/top object first, see
//!   `canonical` in `scripts/classroom/world_data.py`); when a two-object prompt names no
//!   positions, the object order that matches the image better is used (ties: the prompt's order).
//!
//! Rates are reported like the Python: `round(hits / n, 4)`, and quality bars compare that rounded
//! value with the bar.

use crate::world::{Labels, Position};
use std::collections::BTreeMap;

/// The attributes compared class by class, in the Python's order (`SCORED` in train.py).
pub const SCORED: [&str; 10] =
    ["shape", "colour", "bg", "bg_colour", "style", "size", "position", "shape2", "colour2", "position2"];

/// The quality bar of issue 3 (`ARCHS["v1"]["QUALITY_BAR"]` in train.py): headline attribute and
/// minimum rate, for the first classroom model (64 px).
pub const QUALITY_BAR: [(&str, f64); 6] = [
    ("shape", 0.85),
    ("colour", 0.90),
    ("character", 0.80),
    ("style", 0.75),
    ("skull_direct", 0.80),
    ("skull_indirect", 0.50),
];

/// The quality bar of issue 12 (`ARCHS["v2"]["QUALITY_BAR"]` in train.py), for the second classroom
/// model (128 px): stricter, and with positions and the second object of two-object prompts.
pub const QUALITY_BAR_V2: [(&str, f64); 8] = [
    ("shape", 0.90),
    ("colour", 0.95),
    ("character", 0.90),
    ("style", 0.85),
    ("skull_direct", 0.95),
    ("skull_indirect", 0.85),
    ("position", 0.60),
    ("second_object", 0.70),
];

/// The bar a classroom model of `image_size` px is held to: v1's at 64 px, v2's from 128 px.
pub fn quality_bar_for_size(image_size: usize) -> &'static [(&'static str, f64)] {
    if image_size >= 128 { &QUALITY_BAR_V2 } else { &QUALITY_BAR }
}

/// One image's hits: `(attribute, hit)` in the order the Python inserts them.
pub type Score = Vec<(&'static str, bool)>;

/// The class name a prompt asks for, for one of the [`SCORED`] attributes (`None`: not asked).
pub fn wanted(want: &Labels, attribute: &str) -> Option<&'static str> {
    match attribute {
        "shape" => want.shape.map(|v| v.name()),
        "colour" => want.colour.map(|v| v.name()),
        "bg" => want.bg.map(|v| v.name()),
        "bg_colour" => want.bg_colour.map(|v| v.name()),
        "style" => want.style.map(|v| v.name()),
        "size" => want.size.map(|v| v.name()),
        "position" => want.position.map(|v| v.name()),
        "shape2" => want.shape2.map(|v| v.name()),
        "colour2" => want.colour2.map(|v| v.name()),
        "position2" => want.position2.map(|v| v.name()),
        _ => None,
    }
}

/// The labels with the two objects exchanged (shape/colour/position ↔ shape2/colour2/position2).
pub fn swapped(want: &Labels) -> Labels {
    let mut s = want.clone();
    std::mem::swap(&mut s.shape, &mut s.shape2);
    std::mem::swap(&mut s.colour, &mut s.colour2);
    std::mem::swap(&mut s.position, &mut s.position2);
    s
}

/// The evaluator's convention: the first object is the one on the left (or top).
pub fn canonical(want: &Labels) -> Labels {
    let first = |p: Option<Position>| matches!(p, Some(Position::Left | Position::Top));
    if first(want.position2) && !first(want.position) { swapped(want) } else { want.clone() }
}

fn hits(pred: &BTreeMap<String, String>, w: &Labels) -> Score {
    SCORED
        .iter()
        .filter_map(|&k| {
            let want = wanted(w, k)?;
            let got = pred.get(k)?;
            Some((k, got == want))
        })
        .collect()
}

/// `{attribute: hit}` for one generated image (train.py `score_image`). `pred` maps head names to
/// the evaluator's class names; heads it lacks are not scored.
pub fn score_image(pred: &BTreeMap<String, String>, want: &Labels) -> Score {
    let wants = if want.n_objects == 2 {
        if want.position.is_none() { vec![want.clone(), swapped(want)] } else { vec![canonical(want)] }
    } else {
        vec![want.clone()]
    };
    let mut best: Option<Score> = None;
    for w in &wants {
        let h = hits(pred, w);
        let count = |s: &Score| s.iter().filter(|(_, hit)| *hit).count();
        if best.as_ref().is_none_or(|b| count(&h) > count(b)) {
            best = Some(h);
        }
    }
    let mut best = best.unwrap_or_default();
    if let Some(got) = pred.get("character") {
        match want.character {
            Some(c) => best.push(("character", got == c.name())),
            None => best.push(("character_absent", got == "none")),
        }
    }
    if let Some(got) = pred.get("skull") {
        let key = if want.skull { "skull" } else { "skull_absent" };
        best.push((key, got == if want.skull { "true" } else { "false" }));
    }
    if let Some(got) = pred.get("n_objects")
        && want.n_objects != 0
    {
        best.push(("n_objects", *got == want.n_objects.to_string()));
    }
    best
}

/// Hits out of images for one attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub hits: usize,
    pub n: usize,
}

impl Tally {
    /// `hits / n`, rounded to 4 decimals like the Python (`None` when nothing was scored).
    pub fn rate(&self) -> Option<f64> {
        (self.n > 0).then(|| round4(self.hits as f64 / self.n as f64))
    }
}

/// `round(x, 4)`.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Tallies in first-seen order (Python dict order), so tables and JSON list attributes alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tallies(pub Vec<(String, Tally)>);

impl Tallies {
    fn add(&mut self, attribute: &str, hit: bool) {
        let i = match self.0.iter().position(|(k, _)| k == attribute) {
            Some(i) => i,
            None => {
                self.0.push((attribute.to_string(), Tally::default()));
                self.0.len() - 1
            }
        };
        self.0[i].1.n += 1;
        self.0[i].1.hits += hit as usize;
    }

    pub fn get(&self, attribute: &str) -> Option<Tally> {
        self.0.iter().find(|(k, _)| k == attribute).map(|(_, t)| *t)
    }

    fn rates_json(&self) -> serde_json::Value {
        let m: serde_json::Map<String, serde_json::Value> =
            self.0.iter().map(|(k, t)| (k.clone(), t.rate().into())).collect();
        m.into()
    }
}

/// The headline numbers of the model card and the quality bar.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Headline {
    pub shape: Option<f64>,
    pub colour: Option<f64>,
    pub style: Option<f64>,
    /// Character accuracy on the `character` group (all images when there is no such group).
    pub character: Option<f64>,
    /// Skull accuracy on the groups `skull`, `skull_direct`, `skull_synonyms`.
    pub skull_direct: Option<f64>,
    /// Skull accuracy on the groups whose name contains `indirect`.
    pub skull_indirect: Option<f64>,
    /// Position accuracy over all images that ask for one.
    pub position: Option<f64>,
    /// The second object's shape in two-object prompts (`shape2`).
    pub second_object: Option<f64>,
}

impl Headline {
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "shape" => self.shape,
            "colour" => self.colour,
            "style" => self.style,
            "character" => self.character,
            "skull_direct" => self.skull_direct,
            "skull_indirect" => self.skull_indirect,
            "position" => self.position,
            "second_object" => self.second_object,
            _ => None,
        }
    }
}

/// One row of the quality bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarCheck {
    pub name: &'static str,
    pub bar: f64,
    pub measured: Option<f64>,
    pub met: bool,
}

/// Accuracy per attribute over all images and per prompt group (train.py `adherence`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adherence {
    pub all: Tallies,
    pub by_group: Vec<(String, Tallies)>,
}

impl Adherence {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one image's score under its prompt's group.
    pub fn add(&mut self, group: &str, score: &[(&str, bool)]) {
        let g = match self.by_group.iter().position(|(k, _)| k == group) {
            Some(i) => i,
            None => {
                self.by_group.push((group.to_string(), Tallies::default()));
                self.by_group.len() - 1
            }
        };
        for &(k, hit) in score {
            self.all.add(k, hit);
            self.by_group[g].1.add(k, hit);
        }
    }

    pub fn group(&self, name: &str) -> Option<&Tallies> {
        self.by_group.iter().find(|(k, _)| k == name).map(|(_, t)| t)
    }

    fn skull_over(&self, pick: impl Fn(&str) -> bool) -> Option<f64> {
        let t = self
            .by_group
            .iter()
            .filter(|(g, _)| pick(g))
            .filter_map(|(_, t)| t.get("skull"))
            .fold(Tally::default(), |a, b| Tally { hits: a.hits + b.hits, n: a.n + b.n });
        t.rate()
    }

    pub fn headline(&self) -> Headline {
        let all = |k: &str| self.all.get(k).and_then(|t| t.rate());
        Headline {
            shape: all("shape"),
            colour: all("colour"),
            style: all("style"),
            character: match self.group("character") {
                Some(g) => g.get("character").and_then(|t| t.rate()),
                None => all("character"),
            },
            skull_direct: self.skull_over(|g| matches!(g, "skull" | "skull_direct" | "skull_synonyms")),
            skull_indirect: self.skull_over(|g| g.contains("indirect")),
            position: all("position"),
            second_object: all("shape2"),
        }
    }

    /// The quality bar of issue 3 against this run's headline numbers.
    pub fn quality_bar(&self) -> Vec<BarCheck> {
        self.quality_bar_of(&QUALITY_BAR)
    }

    /// `bars` (e.g. [`quality_bar_for_size`]) against this run's headline numbers.
    pub fn quality_bar_of(&self, bars: &[(&'static str, f64)]) -> Vec<BarCheck> {
        let h = self.headline();
        bars.iter()
            .map(|&(name, bar)| {
                let measured = h.get(name);
                BarCheck { name, bar, measured, met: measured.is_some_and(|m| m >= bar) }
            })
            .collect()
    }

    /// The layout of `metrics.json` → `adherence.guidance_<g>`: `all`, `by_group`, `n_images`,
    /// `headline` (rates rounded to 4 decimals).
    pub fn to_json(&self) -> serde_json::Value {
        let h = self.headline();
        let n: serde_json::Map<String, serde_json::Value> =
            self.all.0.iter().map(|(k, t)| (k.clone(), t.n.into())).collect();
        let groups: serde_json::Map<String, serde_json::Value> =
            self.by_group.iter().map(|(g, t)| (g.clone(), t.rates_json())).collect();
        let headline: serde_json::Map<String, serde_json::Value> =
            QUALITY_BAR_V2.iter().map(|(k, _)| (k.to_string(), h.get(k).into())).collect();
        serde_json::json!({"all": self.all.rates_json(), "by_group": groups, "n_images": n, "headline": headline})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{BgKind, Character, Colour, Shape, Size, Style};

    fn pred(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// What the evaluator says about a flat red star, no character, no skull, one object.
    fn red_star() -> Vec<(&'static str, &'static str)> {
        vec![
            ("shape", "star"),
            ("colour", "red"),
            ("bg", "stripes"),
            ("bg_colour", "blue"),
            ("style", "flat"),
            ("size", "big"),
            ("position", "left"),
            ("shape2", "none"),
            ("colour2", "none"),
            ("position2", "none"),
            ("character", "none"),
            ("skull", "false"),
            ("crossbones", "none"),
            ("n_objects", "1"),
        ]
    }

    fn get(s: &Score, k: &str) -> Option<bool> {
        s.iter().find(|(a, _)| *a == k).map(|(_, h)| *h)
    }

    #[test]
    fn only_asked_attributes_are_scored_and_absences_are_checked() {
        let want = Labels {
            shape: Some(Shape::Star),
            colour: Some(Colour::Red),
            style: Some(Style::Flat),
            n_objects: 1,
            ..Labels::default()
        };
        let s = score_image(&pred(&red_star()), &want);
        let keys: Vec<&str> = s.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["shape", "colour", "style", "character_absent", "skull_absent", "n_objects"]);
        assert!(s.iter().all(|(_, h)| *h), "{s:?}");

        // A wrong colour and a stray character are misses.
        let mut p = red_star();
        p[1] = ("colour", "orange");
        p[10] = ("character", "mipsy");
        let s = score_image(&pred(&p), &want);
        assert_eq!(get(&s, "colour"), Some(false));
        assert_eq!(get(&s, "character_absent"), Some(false));
        assert_eq!(get(&s, "shape"), Some(true));
    }

    #[test]
    fn character_and_skull_prompts_score_their_concept() {
        let want = Labels {
            character: Some(Character::Zorbo),
            bg: Some(BgKind::Plain),
            style: Some(Style::Flat),
            n_objects: 1,
            ..Labels::default()
        };
        let mut p = red_star();
        p[10] = ("character", "zorbo");
        let s = score_image(&pred(&p), &want);
        assert_eq!(get(&s, "character"), Some(true));
        assert_eq!(get(&s, "bg"), Some(false));
        assert_eq!(get(&s, "character_absent"), None);

        let want = Labels { skull: true, style: Some(Style::Flat), n_objects: 1, ..Labels::default() };
        let s = score_image(&pred(&red_star()), &want);
        assert_eq!(get(&s, "skull"), Some(false));
        assert_eq!(get(&s, "skull_absent"), None);
        let mut p = red_star();
        p[11] = ("skull", "true");
        assert_eq!(get(&score_image(&pred(&p), &want), "skull"), Some(true));
    }

    #[test]
    fn two_objects_without_positions_take_the_better_order() {
        // "two objects: a red circle and a blue square"; the image has the square on the left.
        let want = Labels {
            shape: Some(Shape::Circle),
            colour: Some(Colour::Red),
            shape2: Some(Shape::Square),
            colour2: Some(Colour::Blue),
            style: Some(Style::Flat),
            n_objects: 2,
            ..Labels::default()
        };
        let p = pred(&[
            ("shape", "square"),
            ("colour", "blue"),
            ("shape2", "circle"),
            ("colour2", "red"),
            ("style", "flat"),
            ("n_objects", "2"),
            ("character", "none"),
            ("skull", "false"),
        ]);
        let s = score_image(&p, &want);
        assert_eq!(s.iter().filter(|(_, h)| *h).count(), s.len(), "{s:?}");
        // A tie keeps the prompt's order: square/red on the left matches one attribute either way.
        let p = pred(&[
            ("shape", "square"),
            ("colour", "red"),
            ("shape2", "moon"),
            ("colour2", "green"),
            ("style", "outlined"),
        ]);
        let s = score_image(&p, &want);
        assert_eq!(
            s,
            vec![("shape", false), ("colour", true), ("style", false), ("shape2", false), ("colour2", false)]
        );
    }

    #[test]
    fn two_objects_with_positions_use_the_canonical_order() {
        // "a green triangle on the right and an orange ring on the left": the ring is object 1.
        let want = Labels {
            shape: Some(Shape::Triangle),
            colour: Some(Colour::Green),
            position: Some(Position::Right),
            shape2: Some(Shape::Ring),
            colour2: Some(Colour::Orange),
            position2: Some(Position::Left),
            style: Some(Style::Flat),
            size: Some(Size::Small),
            n_objects: 2,
            ..Labels::default()
        };
        let p = pred(&[
            ("shape", "ring"),
            ("colour", "orange"),
            ("position", "left"),
            ("shape2", "triangle"),
            ("colour2", "green"),
            ("position2", "right"),
            ("n_objects", "2"),
        ]);
        let s = score_image(&p, &want);
        assert_eq!(s.len(), 7);
        assert!(s.iter().all(|(_, h)| *h), "{s:?}");
        // Without the swap the same image would score 0 of 6 positional attributes.
        assert_eq!(hits(&p, &want).iter().filter(|(_, h)| *h).count(), 0);
    }

    #[test]
    fn adherence_counts_groups_headline_and_quality_bar() {
        let mut a = Adherence::new();
        let hit = |k: &'static str, h: bool| vec![(k, h)];
        for i in 0..4 {
            a.add("character", &hit("character", i < 3)); // 0.75 in the character group
            a.add("skull", &hit("skull", i < 2)); // direct 2/4
            a.add("skull_indirect", &hit("skull", true)); // indirect 4/4
            a.add("combo", &[("shape", i == 0), ("colour", true), ("style", i != 3)]);
        }
        a.add("other", &hit("character", false)); // outside the character group: not in the headline
        let h = a.headline();
        assert_eq!(h.character, Some(0.75));
        assert_eq!(h.skull_direct, Some(0.5));
        assert_eq!(h.skull_indirect, Some(1.0));
        assert_eq!(h.shape, Some(0.25));
        assert_eq!(a.all.get("character"), Some(Tally { hits: 3, n: 5 }));
        assert_eq!(a.all.get("skull"), Some(Tally { hits: 6, n: 8 }));
        let bar: Vec<(&str, bool)> = a.quality_bar().iter().map(|b| (b.name, b.met)).collect();
        assert_eq!(
            bar,
            [
                ("shape", false),
                ("colour", true),
                ("character", false),
                ("style", true),
                ("skull_direct", false),
                ("skull_indirect", true)
            ]
        );
        // Rounding like Python's round(x, 4): 2/3 → 0.6667.
        assert_eq!(Tally { hits: 2, n: 3 }.rate(), Some(0.6667));
        let j = a.to_json();
        assert_eq!(j["by_group"]["combo"]["style"], 0.75);
        assert_eq!(j["n_images"]["skull"], 8);
        assert_eq!(j["headline"]["skull_indirect"], 1.0);
    }
}
