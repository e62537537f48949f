//! The classroom tokenizer splits every word of the classroom world exactly as Stable Diffusion's
//! full CLIP tokenizer (`bpe_simple_vocab_16e6`, built in) does (issue 12, item 1), and the
//! committed folder `scripts/classroom/tokenizer/` is what `studio classroom-tokenizer` writes today.

use classroom::vocabulary::{world_phrases, world_words};
use pipeline::tokenizer::ClipTokenizer;
use pipeline::tokenizer_subset::{CLASSROOM_BASE_MERGES, closed_subset};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn load(dir: &Path) -> ClipTokenizer {
    ClipTokenizer::from_files(
        &read(dir, "vocab.json"),
        &read(dir, "merges.txt"),
        Some(&read(dir, "special_tokens_map.json")),
        Some(&read(dir, "tokenizer_config.json")),
    )
    .expect("tokenizer folder loads")
}

fn pieces(t: &ClipTokenizer, text: &str) -> Vec<String> {
    t.tokenize_words(text).iter().map(|&i| t.decode_token(i).unwrap_or("?").to_string()).collect()
}

/// Words and phrases whose split differs from the full CLIP tokenizer's.
fn mismatches(small: &ClipTokenizer, full: &ClipTokenizer) -> Vec<String> {
    let mut texts = world_words();
    texts.extend(world_phrases());
    texts
        .iter()
        .filter(|t| pieces(small, t) != pieces(full, t))
        .map(|t| format!("{t}: {:?} vs SD {:?}", pieces(small, t), pieces(full, t)))
        .collect()
}

#[test]
fn committed_classroom_tokenizer_is_current() {
    let full = ClipTokenizer::builtin().unwrap();
    let want = closed_subset(&full, CLASSROOM_BASE_MERGES, &world_phrases());
    let dir = repo().join("scripts/classroom/tokenizer");
    let stale = "scripts/classroom/tokenizer/ is stale: the world's words changed. Rewrite it with \
                 `studio classroom-tokenizer --out scripts/classroom/tokenizer` (and retrain the classroom model)";
    assert!(read(&dir, "merges.txt") == want.merges_txt, "{stale}");
    assert!(read(&dir, "vocab.json") == want.vocab_json, "{stale}");
    assert_eq!(read(&dir, "tokenizer_config.json"), want.tokenizer_config_json);
    assert_eq!(read(&dir, "special_tokens_map.json"), want.special_tokens_map_json);
}

#[test]
fn every_world_word_splits_as_in_sd() {
    let full = ClipTokenizer::builtin().unwrap();
    let small = load(&repo().join("scripts/classroom/tokenizer"));
    let bad = mismatches(&small, &full);
    assert!(bad.is_empty(), "{} world texts split unlike SD's CLIP:\n{}", bad.len(), bad.join("\n"));
    // What issue 12 found split in the first classroom tokenizer: one token each in SD, and here.
    for w in
        ["skull", "triangle", "striped", "stripes", "pirate", "symbol", "emblem", "poison", "toxic", "crescent", "disc"]
    {
        assert_eq!(pieces(&small, w), vec![format!("{w}</w>")], "{w}");
    }
    // Made-up names stay several tokens, like real celebrity names.
    for w in ["zorbo", "mipsy", "blonk"] {
        assert!(pieces(&small, w).len() >= 2, "{w}: {:?}", pieces(&small, w));
    }
    // Still a small vocabulary: the base merges plus the few the world adds.
    let n = small.vocab_size();
    assert!((10_514..11_000).contains(&n), "{n} tokens");
}

#[test]
fn general_words_outside_the_world_split_as_in_sd_when_their_merges_are_in_the_base() {
    let full = ClipTokenizer::builtin().unwrap();
    let small = load(&repo().join("scripts/classroom/tokenizer"));
    for w in ["a photo of a dog", "the cat", "showing", "art"] {
        assert_eq!(pieces(&small, w), pieces(&full, w), "{w}");
    }
}

/// The bundled model's own tokenizer. The first classroom model (v1) kept only CLIP's first
/// 10,000 merges, so this fails on it; it passes once the v2 model (trained with
/// `scripts/classroom/tokenizer/`) is in `models/classroom/`.
#[test]
#[ignore = "models/classroom is v1 (first 10,000 merges only); passes with the v2 model of issue 12"]
fn bundled_classroom_model_splits_every_world_word_as_in_sd() {
    let full = ClipTokenizer::builtin().unwrap();
    let small = load(&repo().join("models/classroom/tokenizer"));
    let bad = mismatches(&small, &full);
    assert!(bad.is_empty(), "{} world texts split unlike SD's CLIP:\n{}", bad.len(), bad.join("\n"));
}
