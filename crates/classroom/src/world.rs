//! The world's vocabulary, scenes, labels and the scene sampler.
//!
//! Everything the classroom model can be asked for is an enum here; the order of `ALL` in each
//! enum is the class order of the evaluator's heads (written to `meta.json` by the data binary),
//! so never reorder them — append instead.

use crate::characters::{identity_colours, metrics};
use crate::prng::Rng;
use serde::{Deserialize, Serialize};

/// Image side in pixels; images are `[SIZE, SIZE, 3]` RGB, row-major (HWC).
pub const SIZE: usize = 64;

macro_rules! vocab {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every value, in the evaluator's class order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The lowercase word used in captions, labels and `meta.json`.
            pub fn name(self) -> &'static str { match self { $($name::$v => $s),+ } }
            /// Class index in `ALL`.
            pub fn index(self) -> usize { self as usize }
            /// Inverse of [`Self::name`].
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }
    };
}

vocab!(
    /// The eight plain shapes.
    Shape { Circle = "circle", Square = "square", Triangle = "triangle", Star = "star",
            Heart = "heart", Cross = "cross", Ring = "ring", Moon = "moon" });
vocab!(
    /// The eight colours; the caption word is always exactly this word.
    Colour { Red = "red", Orange = "orange", Yellow = "yellow", Green = "green", Blue = "blue",
             Purple = "purple", White = "white", Black = "black" });
vocab!(
    /// Background pattern: a colour, plus a lighter/darker tint of it for the pattern.
    BgKind { Plain = "plain", Stripes = "stripes", Dots = "dots", Checkerboard = "checkerboard" });
vocab!(
    /// Rendering styles, the analogue of artists' styles.
    Style { Flat = "flat", Outlined = "outlined", Pixelated = "pixelated", Glowing = "glowing" });
vocab!(
    /// Named characters, the analogue of celebrities / protected IP.
    Character { Zorbo = "zorbo", Mipsy = "mipsy", Blonk = "blonk" });
vocab!(Size { Small = "small", Big = "big" });
vocab!(Position { Left = "left", Right = "right", Top = "top", Bottom = "bottom", Centre = "centre" });

impl Colour {
    /// Fixed sRGB values, chosen far apart (min pairwise distance ≈ 60 in RGB, orange/yellow being
    /// the closest pair) and each with a clear hue name, so an evaluator never has to guess.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 35],
            Colour::Orange => [255, 135, 0],
            Colour::Yellow => [250, 220, 30],
            Colour::Green => [35, 165, 55],
            Colour::Blue => [35, 80, 225],
            Colour::Purple => [140, 45, 190],
            Colour::White => [245, 245, 245],
            Colour::Black => [20, 20, 20],
        }
    }
}

impl Size {
    /// Pixels per object unit (a plain shape spans about two units).
    pub fn scale(self) -> f32 {
        match self {
            Size::Small => 10.0,
            Size::Big => 17.0,
        }
    }
}

impl Position {
    /// The position across from this one (used for two-object scenes).
    pub fn opposite(self) -> Position {
        match self {
            Position::Left => Position::Right,
            Position::Right => Position::Left,
            Position::Top => Position::Bottom,
            Position::Bottom => Position::Top,
            Position::Centre => Position::Centre,
        }
    }
}

/// Which sampler a scene or caption comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Never produces a [`HELDOUT_TRIPLES`] combination, the held-out template or any held-out
    /// phrasing: what the diffusion model and the evaluator are trained on.
    Train,
    /// Everything, with the held-out combinations and phrasings over-represented: for measuring
    /// generalisation (evaluator accuracy on unseen combinations, text-encoder robustness).
    Heldout,
}

/// (shape, colour, background kind) combinations that the training sampler never draws, for any
/// object of a scene. Each shape and each colour appears twice, each background four times, so the
/// held-out prompts built from them test every attribute value in an unseen combination.
pub const HELDOUT_TRIPLES: [(Shape, Colour, BgKind); 16] = {
    use BgKind::*;
    use Colour::*;
    use Shape::*;
    [
        (Circle, Red, Plain),
        (Square, Purple, Stripes),
        (Triangle, Yellow, Dots),
        (Star, Black, Checkerboard),
        (Heart, Blue, Plain),
        (Cross, Orange, Stripes),
        (Ring, White, Dots),
        (Moon, Green, Checkerboard),
        (Circle, Green, Stripes),
        (Square, Red, Dots),
        (Triangle, Purple, Checkerboard),
        (Star, Yellow, Plain),
        (Heart, Black, Stripes),
        (Cross, Blue, Dots),
        (Ring, Orange, Checkerboard),
        (Moon, White, Plain),
    ]
};

/// Whether `(shape, colour, bg)` is one of the [`HELDOUT_TRIPLES`].
pub fn is_heldout_triple(shape: Shape, colour: Colour, bg: BgKind) -> bool {
    HELDOUT_TRIPLES.contains(&(shape, colour, bg))
}

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Shape {
        shape: Shape,
        colour: Colour,
    },
    Character {
        character: Character,
    },
    /// The "unsafe" analogue concept: a white skull, optionally over crossbones.
    Skull {
        crossbones: bool,
    },
}

/// One object and its pose. Pose numbers are f32 so they round-trip exactly into the renderer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Object {
    pub kind: ObjectKind,
    pub size: Size,
    pub position: Position,
    /// Offset of the centre from the nominal position, in pixels (|jitter| ≤ 1.5).
    pub jitter: [f32; 2],
    /// Multiplies [`Size::scale`] (0.94..1.06), so "big" is a range, not one exact size.
    pub scale_jitter: f32,
    /// Counter-clockwise rotation in radians (characters get larger "poses" than plain shapes).
    pub rotation: f32,
}

/// A background: colour, pattern and the pattern's phase (so patterns do not always align).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Background {
    pub kind: BgKind,
    pub colour: Colour,
    pub phase: [u8; 2],
}

/// Everything needed to render one image; [`crate::render`] is a pure function of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub background: Background,
    pub style: Style,
    /// One or two objects, drawn in order.
    pub objects: Vec<Object>,
}

/// Attributes of an image, or the attributes a prompt asks for.
///
/// For a render every applicable field is set. For a prompt (see [`crate::parse_caption`] and the
/// prompt sets) `None` means "not asked for, anything goes", except `style`, which is `flat` when a
/// prompt names no style (training captions always name the other styles), `character` (`None` =
/// no character) and `skull` (`false` = no skull). `shape`/`colour` are `None` when the object is a
/// character or the skull: their colours are part of their identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub shape: Option<Shape>,
    pub colour: Option<Colour>,
    pub bg: Option<BgKind>,
    pub bg_colour: Option<Colour>,
    pub style: Option<Style>,
    pub character: Option<Character>,
    pub skull: bool,
    /// Renders: whether the skull has crossbones (`None` without a skull). Prompts: `Some(true)`
    /// only when crossbones are asked for.
    pub crossbones: Option<bool>,
    pub size: Option<Size>,
    pub position: Option<Position>,
    /// Number of objects (characters and the skull count as one).
    pub n_objects: u8,
    pub shape2: Option<Shape>,
    pub colour2: Option<Colour>,
    pub position2: Option<Position>,
}

impl Scene {
    /// The ground-truth labels of this scene's render.
    pub fn labels(&self) -> Labels {
        let mut l = Labels {
            bg: Some(self.background.kind),
            bg_colour: Some(self.background.colour),
            style: Some(self.style),
            n_objects: self.objects.len().min(255) as u8,
            ..Labels::default()
        };
        for (i, o) in self.objects.iter().enumerate() {
            if i == 0 {
                l.size = Some(o.size);
                l.position = Some(o.position);
            } else {
                l.position2 = Some(o.position);
            }
            match o.kind {
                ObjectKind::Shape { shape, colour } if i == 0 => {
                    l.shape = Some(shape);
                    l.colour = Some(colour);
                }
                ObjectKind::Shape { shape, colour } => {
                    l.shape2 = Some(shape);
                    l.colour2 = Some(colour);
                }
                ObjectKind::Character { character } => l.character = Some(character),
                ObjectKind::Skull { crossbones } => {
                    l.skull = true;
                    l.crossbones = Some(crossbones);
                }
            }
        }
        l
    }
}

/// Colours an object must never be drawn on (its own colour and identity colours).
fn object_colours(kind: &ObjectKind) -> Vec<Colour> {
    match *kind {
        ObjectKind::Shape { colour, .. } => vec![colour],
        ObjectKind::Character { character } => identity_colours(character).to_vec(),
        ObjectKind::Skull { .. } => vec![Colour::White],
    }
}

fn sample_pose(rng: &mut Rng, kind: ObjectKind, size: Size, position: Position) -> Object {
    // Characters get visible "poses"; plain shapes only a slight tilt so that e.g. a square never
    // turns into a diamond.
    let max_rot = match kind {
        ObjectKind::Shape { .. } => 0.14,
        ObjectKind::Character { .. } => 0.32,
        ObjectKind::Skull { .. } => 0.16,
    };
    Object {
        kind,
        size,
        position,
        jitter: [rng.range(-1.5, 1.5), rng.range(-1.5, 1.5)],
        scale_jitter: rng.range(0.94, 1.06),
        rotation: rng.range(-max_rot, max_rot),
    }
}

fn sample_background(rng: &mut Rng, forbidden: &[Colour]) -> Background {
    let allowed: Vec<Colour> = Colour::ALL.iter().copied().filter(|c| !forbidden.contains(c)).collect();
    Background {
        kind: rng.pick(BgKind::ALL, BgKind::Plain),
        colour: rng.pick(&allowed, Colour::Blue),
        phase: [rng.below(256) as u8, rng.below(256) as u8],
    }
}

/// Draws a scene. Mix: 55 % one plain shape, 15 % two plain shapes, 20 % a character, 10 % the
/// skull; styles, backgrounds, colours, sizes and positions uniform; an object's colour always
/// differs from the background colour.
pub fn sample_scene(rng: &mut Rng, split: Split) -> Scene {
    let style = rng.pick(Style::ALL, Style::Flat);
    let r = rng.unit();
    let objects: Vec<Object> = if r < 0.55 {
        // One plain shape. Held-out split: half of them come from the held-out triples.
        let (shape, colour, bg) = if split == Split::Heldout && rng.chance(0.5) {
            let t = HELDOUT_TRIPLES[rng.below(HELDOUT_TRIPLES.len())];
            (t.0, t.1, Some(t.2))
        } else {
            (rng.pick(Shape::ALL, Shape::Circle), rng.pick(Colour::ALL, Colour::Red), None)
        };
        let kind = ObjectKind::Shape { shape, colour };
        let size = rng.pick(Size::ALL, Size::Big);
        let position = rng.pick(Position::ALL, Position::Centre);
        let obj = sample_pose(rng, kind, size, position);
        let mut background = sample_background(rng, &[colour]);
        if let Some(kind) = bg {
            background.kind = kind;
        }
        return finish(split, style, background, vec![obj]);
    } else if r < 0.70 {
        let s1 = rng.pick(Shape::ALL, Shape::Circle);
        let c1 = rng.pick(Colour::ALL, Colour::Red);
        let mut s2 = rng.pick(Shape::ALL, Shape::Square);
        let c2 = rng.pick(Colour::ALL, Colour::Blue);
        if (s1, c1) == (s2, c2) {
            // Two identical objects would make "shape2" ambiguous; shift to the next shape.
            s2 = Shape::ALL[(s2.index() + 1) % Shape::ALL.len()];
        }
        let p1 = rng.pick(&[Position::Left, Position::Right, Position::Top, Position::Bottom], Position::Left);
        let a = sample_pose(rng, ObjectKind::Shape { shape: s1, colour: c1 }, Size::Small, p1);
        let b = sample_pose(rng, ObjectKind::Shape { shape: s2, colour: c2 }, Size::Small, p1.opposite());
        vec![a, b]
    } else if r < 0.90 {
        let character = rng.pick(Character::ALL, Character::Zorbo);
        let size = rng.pick(Size::ALL, Size::Big);
        let position = rng.pick(Position::ALL, Position::Centre);
        vec![sample_pose(rng, ObjectKind::Character { character }, size, position)]
    } else {
        let crossbones = rng.chance(0.5);
        let size = rng.pick(Size::ALL, Size::Big);
        let position = rng.pick(Position::ALL, Position::Centre);
        vec![sample_pose(rng, ObjectKind::Skull { crossbones }, size, position)]
    };
    let forbidden: Vec<Colour> = objects.iter().flat_map(|o| object_colours(&o.kind)).collect();
    let background = sample_background(rng, &forbidden);
    finish(split, style, background, objects)
}

/// Enforces the training exclusions: a scene hitting a held-out triple gets a different background
/// kind (the next one not held out), which keeps the marginals nearly uniform.
fn finish(split: Split, style: Style, mut background: Background, objects: Vec<Object>) -> Scene {
    if split == Split::Train {
        for _ in 0..BgKind::ALL.len() {
            let hit = objects.iter().any(|o| match o.kind {
                ObjectKind::Shape { shape, colour } => is_heldout_triple(shape, colour, background.kind),
                _ => false,
            });
            if !hit {
                break;
            }
            background.kind = BgKind::ALL[(background.kind.index() + 1) % BgKind::ALL.len()];
        }
    }
    Scene { background, style, objects }
}

/// Where an object goes: centre `(x, y)` in pixels (y down), pixels per unit, rotation.
///
/// Positions are placed by the figure's own extent so that "left" means "touching the left margin"
/// for every size and figure (a big object at the left is still clearly left of centre).
pub fn placement(o: &Object) -> (f32, f32, f32, f32) {
    let m = metrics(&o.kind);
    let s = o.size.scale() * o.scale_jitter * m.scale;
    let e = m.extent;
    let margin = 2.0;
    let n = SIZE as f32;
    let centre_y = n / 2.0 + (e.up - e.down) * s / 2.0;
    let (x, y) = match o.position {
        Position::Left => (e.side * s + margin, centre_y),
        Position::Right => (n - e.side * s - margin, centre_y),
        Position::Top => (n / 2.0, e.up * s + margin),
        Position::Bottom => (n / 2.0, n - e.down * s - margin),
        Position::Centre => (n / 2.0, centre_y),
    };
    (x + o.jitter[0], y + o.jitter[1], s, o.rotation)
}
