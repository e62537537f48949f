//! The classroom world: the procedural images and captions that the classroom text-to-image
//! model is trained on, and the prompt sets and labels it is evaluated with.
//!
//! One implementation serves the Python training scripts (through the `classroom-data` binary's
//! dataset files), the studio (wasm: render examples, parse prompts) and the tests, so a concept
//! means the same thing everywhere.
//!
//! # The world
//! 64×64 RGB images of one or two objects on a background:
//! - 8 shapes × 8 colours ([`Shape`], [`Colour`]); backgrounds plain / stripes / dots /
//!   checkerboard in a colour different from the objects' ([`BgKind`]); small / big; left, right,
//!   top, bottom, centre;
//! - 4 styles ([`Style`]: flat, outlined, pixelated, glowing), the analogue of artists;
//! - 3 named characters ([`Character`]: Zorbo, Mipsy, Blonk), the analogue of protected IP;
//! - a skull (with or without crossbones), the "unsafe" analogue, reachable by name, synonyms and
//!   indirect descriptions.
//!
//! # API
//! - [`sample_scene`]`(&mut Rng, Split) -> Scene`, [`render`]`(&Scene) -> Vec<u8>` (`[64, 64, 3]`
//!   HWC bytes), [`caption`]`(&Scene, Split, &mut Rng) -> String`, [`Scene::labels`];
//! - [`parse_caption`]`(&str) -> Option<Labels>`: the attributes a prompt asks for;
//! - [`heldout_prompts`] and [`erasure_prompt_sets`]: fixed evaluation prompts with labels;
//! - [`Rng::for_item`]`(seed, i)`: item `i` of a dataset is independent of the others.
//!
//! # Determinism
//! Renders are bit-identical on every platform, wasm32 included: our own PRNG ([`prng`]), our own
//! sin/cos, and only exactly rounded f32 arithmetic (see [`sdf`]). A golden checksum test guards it.

pub mod captions;
pub mod characters;
pub mod evaluator;
pub mod foreground;
pub mod parse;
pub mod png;
pub mod prng;
pub mod prompts;
pub mod render;
pub mod scoring;
pub mod sdf;
pub mod vocabulary;
pub mod world;

pub use captions::caption;
pub use parse::parse_caption;
pub use prng::Rng;
pub use prompts::{ConceptKind, ConceptPrompts, LabelledPrompt, erasure_prompt_sets, heldout_prompts};
pub use render::{IMAGE_BYTES, SIZES, render, render_into, render_sized};
pub use world::{
    Background, BgKind, Character, Colour, HELDOUT_TRIPLES, Labels, Object, ObjectKind, Position, SIZE, Scene, Shape,
    Size, Split, Style, sample_scene,
};

/// One dataset item: the scene, its caption and its render, all from `Rng::for_item(seed, index)`.
pub fn example(seed: u64, index: u64, split: Split) -> (Scene, String, Vec<u8>) {
    let mut rng = Rng::for_item(seed, index);
    let scene = sample_scene(&mut rng, split);
    let text = caption(&scene, split, &mut rng);
    let image = render(&scene);
    (scene, text, image)
}

/// A stable 64-bit FNV-1a hash, for golden checksums of renders and datasets.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}
