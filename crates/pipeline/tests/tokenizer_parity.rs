//! ClipTokenizer parity with transformers' `CLIPTokenizer.from_pretrained(folder)` (tokenizers-backed,
//! transformers 5.24 / tokenizers 0.23), called with `padding="max_length", max_length=77,
//! truncation=True`. References: tests/fixtures/reference/tokenizer.json, written by
//! scripts/reference/ref_tokenizer.py. Ids must be equal, exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pipeline::tokenizer::{ClipTokenizer, Encoding, TokenizerError, debug_normalize_and_split};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference() -> Value {
    serde_json::from_str(&read("tests/fixtures/reference/tokenizer.json")).expect("reference JSON")
}

fn prompts(r: &Value) -> Vec<String> {
    r["prompts"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// The tokenizer a reference variant describes: the folder's vocab/merges with the variant's configs.
fn load(variant: &Value) -> ClipTokenizer {
    let folder = variant["folder"].as_str().unwrap();
    let vocab = read(&format!("{folder}/vocab.json"));
    let merges = read(&format!("{folder}/merges.txt"));
    ClipTokenizer::from_files(
        &vocab,
        &merges,
        variant["special_tokens_map"].as_str(),
        variant["tokenizer_config"].as_str(),
    )
    .unwrap()
}

/// Every prompt of the reference through `tok`, against the expectations of `variant`.
fn check_variant(name: &str, tok: &ClipTokenizer, variant: &Value, prompts: &[String]) {
    assert_eq!(tok.bos_id() as u64, variant["bos_id"].as_u64().unwrap(), "{name}: bos");
    assert_eq!(tok.eos_id() as u64, variant["eos_id"].as_u64().unwrap(), "{name}: eos");
    assert_eq!(tok.pad_id() as u64, variant["pad_id"].as_u64().unwrap(), "{name}: pad");
    assert_eq!(tok.vocab_size() as u64, variant["vocab_size"].as_u64().unwrap(), "{name}: vocab size");
    assert_eq!(tok.max_length(), 77, "{name}: max length");
    for pair in variant["decoded"].as_array().unwrap() {
        let id = pair[0].as_u64().unwrap() as u32;
        assert_eq!(tok.decode_token(id), pair[1].as_str(), "{name}: decode_token({id})");
    }
    let expected = variant["encodings"].as_array().unwrap();
    assert_eq!(expected.len(), prompts.len());
    let mut failures = Vec::new();
    for (prompt, e) in prompts.iter().zip(expected) {
        let want = Encoding {
            ids: ids(&e["ids"]),
            n_tokens: e["n_tokens"].as_u64().unwrap() as usize,
            truncated: e["truncated"].as_bool().unwrap(),
        };
        let got = tok.encode(prompt);
        let words = tok.tokenize_words(prompt);
        if got != want || words != ids(&e["words"]) {
            failures.push(format!(
                "{prompt:?}\n  want {want:?}\n  got  {got:?}\n  words want {:?}\n  words got  {words:?}",
                ids(&e["words"])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} prompts differ:\n{}",
        failures.len(),
        prompts.len(),
        failures.join("\n")
    );
}

fn variant_test(name: &str) {
    let r = reference();
    let variant = &r["variants"][name];
    assert!(variant.is_object(), "no variant {name} in the reference");
    check_variant(name, &load(variant), variant, &prompts(&r));
}

#[test]
fn reference_covers_the_required_prompts() {
    let r = reference();
    let p = prompts(&r);
    assert!(p.len() >= 30);
    let truncated = r["variants"]["clip-full"]["encodings"].as_array().unwrap();
    assert!(truncated.iter().filter(|e| e["truncated"].as_bool().unwrap()).count() >= 3, "prompts over 77 tokens");
    for needle in ["it's", "we'll", "é", "東", "🐱", "\n\n", "&amp;", "1990s"] {
        assert!(p.iter().any(|s| s.contains(needle)), "no prompt with {needle:?}");
    }
    assert!(p.iter().any(String::is_empty));
}

#[test]
fn full_vocabulary_matches_transformers() {
    variant_test("clip-full");
}

#[test]
fn tiny_sd1_truncated_vocabulary_matches_transformers() {
    variant_test("tiny-sd1");
}

#[test]
fn tiny_sd2_truncated_vocabulary_with_pad_bang_matches_transformers() {
    variant_test("tiny-sd2");
}

#[test]
fn sd15_style_special_token_files_match_transformers() {
    variant_test("sd15-configs");
}

#[test]
fn sd2_style_special_token_files_match_transformers() {
    variant_test("sd2-configs");
}

#[test]
fn textual_inversion_added_tokens_match_transformers() {
    variant_test("textual-inversion");
}

#[test]
fn config_only_and_no_config_folders_match_transformers() {
    variant_test("config-only");
    variant_test("no-configs");
}

#[test]
fn known_ids_and_truncation() {
    let r = reference();
    let tok = load(&r["variants"]["clip-full"]);
    // Spot values, independent of the reference file.
    assert_eq!(tok.tokenize_words("a photo of a cat"), vec![320, 1125, 539, 320, 2368]);
    assert_eq!(tok.tokenize_words("it's"), vec![585, 568]);
    assert_eq!(tok.token_id("cat</w>"), Some(2368));
    assert_eq!(tok.unk_id(), Some(49407));
    let fits = tok.encode(&"cat ".repeat(75));
    assert_eq!((fits.n_tokens, fits.truncated), (77, false));
    assert_eq!(fits.ids[76], 49407);
    let over = tok.encode(&"cat ".repeat(76));
    assert_eq!((over.n_tokens, over.truncated, over.ids[75], over.ids[76]), (77, true, 2368, 49407));
    let empty = tok.encode("");
    assert_eq!((empty.n_tokens, empty.truncated, &empty.ids[..3]), (2, false, &[49406, 49407, 49407][..]));
}

#[test]
fn builtin_equals_full_folder() {
    let r = reference();
    let full = load(&r["variants"]["clip-full"]);
    let builtin = ClipTokenizer::builtin().unwrap();
    assert_eq!(builtin.vocab_size(), 49408);
    for id in 0..49408u32 {
        assert_eq!(builtin.decode_token(id), full.decode_token(id), "token {id}");
    }
    assert_eq!(builtin.decode_token(49408), None);
    assert_eq!((builtin.bos_id(), builtin.eos_id(), builtin.pad_id()), (49406, 49407, 49407));
    check_variant("builtin", &builtin, &r["variants"]["clip-full"], &prompts(&r));
}

/// The normalizer (NFC, `\s+` → " ", lowercase) on every Unicode scalar value, against `tokenizers`.
#[test]
fn normalizer_matches_tokenizers_on_every_code_point() {
    let r = reference();
    let tok = load(&r["variants"]["clip-full"]);
    let changed: BTreeMap<u32, String> = r["normalized_chars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_str().unwrap().to_string()))
        .collect();
    assert!(changed.len() > 2000, "the table lists the upper-case letters at least");
    let mut bad = Vec::new();
    for c in (0..0x110000u32).filter_map(char::from_u32) {
        let want = changed.get(&(c as u32)).cloned().unwrap_or_else(|| c.to_string());
        let (got, _) = debug_normalize_and_split(&tok, &c.to_string());
        if got != want {
            bad.push(format!("U+{:04X}: want {want:?} got {got:?}", c as u32));
        }
    }
    assert!(
        bad.is_empty(),
        "{} code points differ:\n{}",
        bad.len(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The pre-tokenizer regex classes (whitespace, letter, number, other) of every code point.
#[test]
fn pre_tokenizer_classes_match_tokenizers_on_every_code_point() {
    let r = reference();
    let tok = load(&r["variants"]["clip-full"]);
    let runs: Vec<(u32, String)> = r["char_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_str().unwrap().to_string()))
        .collect();
    let class_of = |cp: u32| {
        let i = runs.partition_point(|(start, _)| *start <= cp);
        runs[i - 1].1.as_str()
    };
    let mut bad = Vec::new();
    for c in (0..0x110000u32).filter_map(char::from_u32) {
        let split = |s: String| debug_normalize_and_split(&tok, &s).1;
        let around_letter = split(format!("a{c}a"));
        let around_punct = split(format!("!{c}!"));
        let got = if around_letter == ["a", "a"] {
            "W"
        } else if around_letter == [format!("a{c}a")] {
            "L"
        } else if around_punct == [format!("!{c}!")] {
            "P"
        } else {
            "N"
        };
        if got != class_of(c as u32) {
            bad.push(format!("U+{:04X}: want {} got {got}", c as u32, class_of(c as u32)));
        }
    }
    assert!(
        bad.is_empty(),
        "{} code points differ:\n{}",
        bad.len(),
        bad.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn bad_files_give_actionable_errors() {
    let vocab = r#"{"a": 0, "b": 1, "a</w>": 2, "b</w>": 3}"#;
    let err = ClipTokenizer::from_files(vocab, "#version: 0.2\na b\n", None, None).unwrap_err();
    assert!(matches!(&err, TokenizerError::MergeToken { line: 2, token } if token == "ab"), "{err}");
    assert!(err.to_string().contains("different tokenizers"));
    let err = ClipTokenizer::from_files(vocab, "a b c\n", None, None).unwrap_err();
    assert!(matches!(err, TokenizerError::MergeLine { line: 1, .. }), "{err}");
    assert!(matches!(ClipTokenizer::from_files("[1, 2]", "", None, None), Err(TokenizerError::Vocab(_))));
    assert!(matches!(ClipTokenizer::from_files(r#"{"a": -1}"#, "", None, None), Err(TokenizerError::Vocab(_))));
    let err = ClipTokenizer::from_files(vocab, "", Some("{not json"), None).unwrap_err();
    assert!(matches!(err, TokenizerError::Config { file: "special_tokens_map.json", .. }), "{err}");
    let err = ClipTokenizer::from_files(vocab, "", None, Some(r#"{"model_max_length": 1}"#)).unwrap_err();
    assert!(err.to_string().contains("model_max_length"), "{err}");
    // A vocabulary without CLIP's specials still works: they become added tokens after it.
    let tok = ClipTokenizer::from_files(vocab, "", None, None).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id(), tok.vocab_size()), (4, 5, 5, 6));
    assert_eq!(tok.unk_id(), None);
    // Bytes without a symbol in this vocabulary and no UNK in it are dropped.
    assert_eq!(tok.tokenize_words("ab zz"), vec![0, 3]);
}
