//! A small CLIP tokenizer that splits a given set of texts exactly as the full one does.
//!
//! A tiny model cannot afford CLIP's 49 408-token embedding table, but cutting the merges list at
//! some rank (the first classroom model kept the first 10 000) splits every word whose derivation
//! needs a later merge into pieces SD never sees: `skull` became `sk` + `ull`, so UCE's "last
//! token" edited a fragment. The subset here keeps the first `base_merges` merges (general words
//! still split as in CLIP as long as their whole derivation lies there) *plus* every merge that
//! the full tokenizer applies to any of the given texts, ranks in their original order.
//!
//! Why that is exact: BPE applies, at each step, the lowest-ranked merge among the adjacent pairs
//! present (`tokenizers/src/models/bpe/word.rs`, `merge_all`). If the kept list contains every merge
//! of a word's derivation, the merge the full list applies next is kept, and no kept merge can
//! rank below it (it is the minimum over all merges present), so the subset applies the same merge
//! at every step and stops when the full list stops. The test `classroom_tokenizer.rs` checks it
//! on every word and phrase of the classroom world against the built-in full vocabulary.
//!
//! The vocabulary is laid out as CLIP's `simple_tokenizer.py` (and `scripts/reference/clip_bpe.py`)
//! lays it out: 256 byte symbols, the same with `</w>`, one token per kept merge, then
//! `<|startoftext|>` and `<|endoftext|>`.

use crate::tokenizer::{ClipTokenizer, clip_vocab_order};
use std::collections::BTreeSet;

/// The classroom tokenizer's base: CLIP's first merges that every word whose whole derivation lies in
/// them (the general words a student may type outside the world) keeps, beside the world's merges.
pub const CLASSROOM_BASE_MERGES: usize = 10_000;

/// The files of a tokenizer folder, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerFiles {
    pub vocab_json: String,
    pub merges_txt: String,
    pub special_tokens_map_json: String,
    pub tokenizer_config_json: String,
    /// Ranks (in the full list) of the merges kept beyond the first `base_merges`.
    pub extra_ranks: Vec<u32>,
    /// Tokens in `vocab_json`.
    pub n_tokens: usize,
}

/// The first `base_merges` merges of `full` plus every merge `full` applies to `texts`.
pub fn closed_subset(full: &ClipTokenizer, base_merges: usize, texts: &[String]) -> TokenizerFiles {
    let merges = full.merges_in_rank_order();
    let mut keep: BTreeSet<u32> = (0..base_merges.min(merges.len()) as u32).collect();
    let mut extra = BTreeSet::new();
    for t in texts {
        for rank in full.merge_ranks_used(t) {
            if keep.insert(rank) {
                extra.insert(rank);
            }
        }
    }
    let kept: Vec<&(String, String)> = keep.iter().filter_map(|&r| merges.get(r as usize)).collect();

    let order = clip_vocab_order(kept.iter().map(|(a, b)| (a.as_str(), b.as_str())));
    // vocab.json as `json.dump({t: i ...})` writes it in id order: a stable, diff-friendly file.
    let mut vocab_json = String::from("{");
    for (i, t) in order.iter().enumerate() {
        if i > 0 {
            vocab_json.push_str(", ");
        }
        vocab_json.push_str(&serde_json::to_string(t).unwrap_or_default());
        vocab_json.push_str(&format!(": {i}"));
    }
    vocab_json.push('}');

    let mut merges_txt = String::from("#version: 0.2\n");
    for (a, b) in &kept {
        merges_txt.push_str(&format!("{a} {b}\n"));
    }
    let special_tokens_map_json = r#"{
  "bos_token": "<|startoftext|>",
  "eos_token": "<|endoftext|>",
  "pad_token": "<|endoftext|>",
  "unk_token": "<|endoftext|>"
}
"#
    .to_string();
    let tokenizer_config_json = r#"{
  "tokenizer_class": "CLIPTokenizer",
  "model_max_length": 77,
  "bos_token": "<|startoftext|>",
  "eos_token": "<|endoftext|>",
  "pad_token": "<|endoftext|>",
  "unk_token": "<|endoftext|>",
  "do_lower_case": true
}
"#
    .to_string();
    TokenizerFiles {
        vocab_json,
        merges_txt,
        special_tokens_map_json,
        tokenizer_config_json,
        extra_ranks: extra.into_iter().collect(),
        n_tokens: order.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subset_with_a_word_s_derivation_splits_it_as_the_full_list() {
        let full = ClipTokenizer::builtin().expect("built-in CLIP");
        let texts = vec!["a skull on a striped background".to_string(), "zorbo".to_string()];
        // With no base merges at all, only the derivations of these texts are kept.
        let f = closed_subset(&full, 0, &texts);
        let small = ClipTokenizer::from_files(
            &f.vocab_json,
            &f.merges_txt,
            Some(&f.special_tokens_map_json),
            Some(&f.tokenizer_config_json),
        )
        .expect("the subset loads");
        for t in texts.iter().map(String::as_str).chain(["skull", "striped", "zorbo"]) {
            let want: Vec<&str> = full.tokenize_words(t).iter().filter_map(|&i| full.decode_token(i)).collect();
            let got: Vec<&str> = small.tokenize_words(t).iter().filter_map(|&i| small.decode_token(i)).collect();
            assert_eq!(got, want, "{t}");
        }
        // `skull` is one token in CLIP; made-up names stay several.
        assert_eq!(small.tokenize_words("skull").len(), 1);
        assert!(small.tokenize_words("zorbo").len() >= 2);
        assert_eq!(small.vocab_size(), 512 + f.extra_ranks.len() + 2);
        // A word outside the texts loses its merges: "dog" is one token in CLIP, pieces here.
        assert_eq!(full.tokenize_words("dog").len(), 1);
        assert!(small.tokenize_words("dog").len() > 1);
    }
}
