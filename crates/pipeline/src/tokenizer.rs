//! CLIP byte-level BPE tokenizer, equal to transformers' `CLIPTokenizer.from_pretrained(folder)` called
//! as StableDiffusionPipeline calls it: `padding="max_length", max_length=77, truncation=True`.
//!
//! Reference: transformers 5.24 `models/clip/tokenization_clip.py`, which since transformers 5 is the
//! only CLIPTokenizer and is backed by the `tokenizers` library (0.23). Its pipeline, followed here:
//! 1. added tokens (BOS, EOS, UNK, PAD, textual-inversion tokens, ...) are cut out of the raw text
//!    first (`tokenizers/src/tokenizer/added_vocabulary.rs`, `extract_and_normalize`): those with
//!    `normalized = false` are matched on the raw text, the others on the normalized text;
//! 2. normalizer: NFC, `\s+` → `" "`, lowercase (char by char, so a final `Σ` becomes `σ`, not `ς`);
//! 3. pre-tokenizer: the CLIP regex below, then `ByteLevel` (bytes → printable chars, GPT-2 table);
//! 4. BPE with `</w>` appended to a word's last symbol, merges applied lowest rank first
//!    (`tokenizers/src/models/bpe/word.rs`, `merge_all`);
//! 5. `RobertaProcessing`: BOS + tokens + EOS, truncated to `max_length`, padded with PAD.
//!
//! No ftfy, no `html.unescape`, no strip: transformers 5 never applies them (the ftfy path belonged to
//! the removed slow tokenizer), so `&amp;` stays three tokens. Only an SD 2.x quirk looks odd but is
//! faithful: its PAD token `!` is a special added token, so every `!` in a prompt becomes id 0, never
//! the BPE `!</w>`. `lstrip`/`rstrip`/`single_word` of added tokens are honoured;
//! `additional_special_tokens` and `added_tokens.json` are not read (SD folders have neither).
//!
//! NFC uses `unicode-normalization-alignments` (Unicode 9 tables), the crate `tokenizers` itself uses;
//! crates/pipeline/tests/tokenizer_parity.rs checks the normalizer and the regex classes on every
//! Unicode scalar value against `tokenizers`, and the ids of 43 prompts against transformers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use regex::Regex;
use serde_json::{Map, Value};
use unicode_normalization_alignments::UnicodeNormalization;

/// `bpe_simple_vocab_16e6.txt.gz`'s first 48 894 merges (the ones CLIP uses), as `merges.txt` text,
/// zlib-compressed (208 kB instead of 525 kB): written by `scripts/reference/ref_tokenizer.py`.
static BUILTIN_MERGES: &[u8] = include_bytes!("clip_bpe_merges.zlib");

/// CLIP's pre-tokenization regex, `tokenization_clip.py` (`pre_tokenizers.Split(..., invert=True)`).
const CLIP_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// CLIP's context length; also the fallback when `tokenizer_config.json` gives no usable limit.
const CLIP_MAX_LENGTH: usize = 77;
const END_OF_WORD: &str = "</w>";

/// Why a tokenizer folder could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer/vocab.json is not a JSON object mapping token strings to integer ids: {0}")]
    Vocab(String),
    #[error(
        "tokenizer/merges.txt line {line} (`{text}`) is not two tokens separated by one space: \
         the file is damaged or is not a BPE merges file"
    )]
    MergeLine { line: usize, text: String },
    #[error(
        "tokenizer/merges.txt line {line} needs the token `{token}`, which tokenizer/vocab.json lacks: \
         the two files come from different tokenizers"
    )]
    MergeToken { line: usize, token: String },
    #[error("tokenizer/{file} is not valid: {reason}")]
    Config { file: &'static str, reason: String },
    #[error("the built-in CLIP vocabulary is damaged ({0}); rebuild it with scripts/reference/ref_tokenizer.py")]
    Builtin(String),
}

/// A prompt as token ids for the text encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// `[max_length]`: BOS, the prompt's tokens, EOS, then PAD.
    pub ids: Vec<u32>,
    /// Real tokens including BOS and EOS, after truncation (the attention-mask sum).
    pub n_tokens: usize,
    /// The prompt did not fit and lost its tail: tell the user.
    pub truncated: bool,
}

/// `tokenizers`' `AddedToken`, the flags that change matching.
#[derive(Debug, Clone)]
struct AddedToken {
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
}

impl AddedToken {
    /// Plain-string special tokens: transformers adds them with `special=True`, hence `normalized=False`.
    fn plain(content: &str) -> Self {
        Self { content: content.into(), single_word: false, lstrip: false, rstrip: false, normalized: false }
    }

    /// Python's `AddedToken(**dict)`: `normalized` defaults to `not special`.
    fn from_dict(d: &Map<String, Value>, special_default: bool, file: &'static str) -> Result<Self, TokenizerError> {
        let content = d.get("content").and_then(Value::as_str).ok_or_else(|| TokenizerError::Config {
            file,
            reason: format!("an added token has no string \"content\": {}", Value::Object(d.clone())),
        })?;
        let flag = |k: &str, default: bool| d.get(k).and_then(Value::as_bool).unwrap_or(default);
        let special = flag("special", special_default);
        Ok(Self {
            content: content.into(),
            single_word: flag("single_word", false),
            lstrip: flag("lstrip", false),
            rstrip: flag("rstrip", false),
            normalized: flag("normalized", !special),
        })
    }
}

/// A special-token setting as transformers carries it: a plain string or an `AddedToken`.
#[derive(Debug, Clone)]
enum Special {
    Plain(String),
    Token(AddedToken),
}

impl Special {
    fn content(&self) -> &str {
        match self {
            Special::Plain(s) => s,
            Special::Token(t) => &t.content,
        }
    }
    fn to_added(&self) -> AddedToken {
        match self {
            Special::Plain(s) => AddedToken::plain(s),
            Special::Token(t) => t.clone(),
        }
    }
}

/// CLIP BPE tokenizer (see the module docs for the reference it follows).
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    vocab: HashMap<String, u32>,
    id_to_token: HashMap<u32, String>,
    /// `(left id, right id)` → `(rank, merged id)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Id of each byte's symbol inside a word, and as a word's last symbol (with `</w>`).
    byte_ids: [Option<u32>; 256],
    byte_end_ids: [Option<u32>; 256],
    unk_id: Option<u32>,
    /// Added tokens by id, and the two matching sets of `(pattern, id)`.
    added: HashMap<u32, AddedToken>,
    raw_patterns: Vec<(String, u32)>,
    normalized_patterns: Vec<(String, u32)>,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
    pre_tokenizer: Regex,
    whitespace: Regex,
    word_at_end: Regex,
    word_at_start: Regex,
}

impl ClipTokenizer {
    /// From a model folder's tokenizer/ files (vocab.json, merges.txt, and the optional
    /// special_tokens_map.json / tokenizer_config.json contents).
    pub fn from_files(
        vocab_json: &str,
        merges_txt: &str,
        special_tokens_map: Option<&str>,
        tokenizer_config: Option<&str>,
    ) -> Result<Self, TokenizerError> {
        let raw: Map<String, Value> =
            serde_json::from_str(vocab_json).map_err(|e| TokenizerError::Vocab(e.to_string()))?;
        let mut vocab = HashMap::with_capacity(raw.len());
        for (token, id) in raw {
            let id = id.as_u64().and_then(|id| u32::try_from(id).ok()).ok_or_else(|| {
                TokenizerError::Vocab(format!("token `{token}` has id {id}, expected an integer below 2^32"))
            })?;
            vocab.insert(token, id);
        }
        Self::build(vocab, merges_txt, special_tokens_map, tokenizer_config)
    }

    /// The full CLIP vocabulary built in (fallback when a folder has no tokenizer files): OpenAI's
    /// 49 408 tokens with SD 1.x settings (PAD = EOS = `<|endoftext|>`, 77 tokens).
    pub fn builtin() -> Result<Self, TokenizerError> {
        let bytes = miniz_oxide::inflate::decompress_to_vec_zlib(BUILTIN_MERGES)
            .map_err(|e| TokenizerError::Builtin(format!("inflate: {e:?}")))?;
        let merges = String::from_utf8(bytes).map_err(|_| TokenizerError::Builtin("not UTF-8".into()))?;
        let order =
            clip_vocab_order(merges.lines().filter(|l| !l.starts_with("#version")).filter_map(|l| l.split_once(' ')));
        let vocab = order.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let config = r#"{"model_max_length": 77}"#;
        Self::build(vocab, &merges, None, Some(config)).map_err(|e| TokenizerError::Builtin(e.to_string()))
    }

    fn build(
        vocab: HashMap<String, u32>,
        merges_txt: &str,
        special_tokens_map: Option<&str>,
        tokenizer_config: Option<&str>,
    ) -> Result<Self, TokenizerError> {
        let mut merges = HashMap::new();
        // `tokenizers`' `convert_merges_to_hashmap`: skip `#version`, exactly two parts per line;
        // a repeated pair keeps its last rank (HashMap collect).
        let lines = merges_txt.lines().enumerate().filter(|(_, l)| !l.starts_with("#version"));
        for (rank, (line_no, line)) in lines.enumerate() {
            let line_no = line_no + 1;
            let mut parts = line.split(' ');
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(TokenizerError::MergeLine { line: line_no, text: line.chars().take(80).collect() });
            };
            let id = |t: &str| {
                vocab.get(t).copied().ok_or_else(|| TokenizerError::MergeToken { line: line_no, token: t.into() })
            };
            merges.insert((id(a)?, id(b)?), (rank as u32, id(&format!("{a}{b}"))?));
        }
        let mut byte_ids = [None; 256];
        let mut byte_end_ids = [None; 256];
        for (b, c) in bytes_to_unicode() {
            byte_ids[b as usize] = vocab.get(c.to_string().as_str()).copied();
            byte_end_ids[b as usize] = vocab.get(format!("{c}{END_OF_WORD}").as_str()).copied();
        }
        let id_to_token = vocab.iter().map(|(t, &i)| (i, t.clone())).collect();
        let regex = |p: &str| Regex::new(p).map_err(|e| TokenizerError::Builtin(format!("regex {p}: {e}")));
        let mut tok = Self {
            id_to_token,
            merges,
            byte_ids,
            byte_end_ids,
            unk_id: None,
            added: HashMap::new(),
            raw_patterns: Vec::new(),
            normalized_patterns: Vec::new(),
            bos_id: 0,
            eos_id: 0,
            pad_id: 0,
            max_length: CLIP_MAX_LENGTH,
            pre_tokenizer: regex(CLIP_PATTERN)?,
            whitespace: regex(r"\s+")?,
            word_at_end: regex(r"\w$")?,
            word_at_start: regex(r"^\w")?,
            vocab,
        };
        tok.set_special_tokens(special_tokens_map, tokenizer_config)?;
        Ok(tok)
    }

    /// Resolves BOS/EOS/UNK/PAD and the added tokens the way transformers 5.24 does
    /// (`tokenization_utils_base.py` `from_pretrained`, `tokenization_utils_tokenizers.py` `__init__`
    /// and `_post_init`), including which `normalized` flag wins when one string is several tokens.
    fn set_special_tokens(&mut self, special_map: Option<&str>, config: Option<&str>) -> Result<(), TokenizerError> {
        const MAP: &str = "special_tokens_map.json";
        const CONFIG: &str = "tokenizer_config.json";
        let parse = |text: Option<&str>, file: &'static str| -> Result<Map<String, Value>, TokenizerError> {
            match text {
                None => Ok(Map::new()),
                Some(t) => serde_json::from_str(t).map_err(|e| TokenizerError::Config { file, reason: e.to_string() }),
            }
        };
        let config = parse(config, CONFIG)?;
        // Order matters: `_post_init` re-adds them in SPECIAL_TOKENS_ATTRIBUTES order, the last flags win.
        let keys = ["bos_token", "eos_token", "unk_token", "pad_token"];
        let defaults = ["<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>"];
        let mut values: [Option<Special>; 4] = Default::default();
        for (slot, key) in values.iter_mut().zip(keys) {
            *slot = match config.get(key) {
                Some(Value::String(s)) => Some(Special::Plain(s.clone())),
                Some(Value::Object(d)) => Some(Special::Token(AddedToken::from_dict(d, false, CONFIG)?)),
                _ => None,
            };
        }
        let mut decoder: Vec<(u64, AddedToken)> = Vec::new();
        if let Some(atd) = config.get("added_tokens_decoder") {
            // A saved `added_tokens_decoder` makes transformers ignore special_tokens_map.json and
            // swap each named special token for the decoder's token of the same content.
            let atd = atd.as_object().ok_or_else(|| TokenizerError::Config {
                file: CONFIG,
                reason: "\"added_tokens_decoder\" must be an object of id → token".into(),
            })?;
            for (index, token) in atd {
                let index = index.parse::<u64>().map_err(|_| TokenizerError::Config {
                    file: CONFIG,
                    reason: format!("\"added_tokens_decoder\" key `{index}` is not an integer id"),
                })?;
                let d = token.as_object().ok_or_else(|| TokenizerError::Config {
                    file: CONFIG,
                    reason: format!("\"added_tokens_decoder\" entry {index} is not an object"),
                })?;
                decoder.push((index, AddedToken::from_dict(d, false, CONFIG)?));
            }
            decoder.sort_by_key(|(i, _)| *i);
            for slot in values.iter_mut().flatten() {
                if let Some((_, t)) = decoder.iter().rev().find(|(_, t)| t.content == slot.content()) {
                    *slot = Special::Token(t.clone());
                }
            }
        } else {
            let map = parse(special_map, MAP)?;
            for (slot, key) in values.iter_mut().zip(keys) {
                match map.get(key) {
                    Some(Value::String(s)) => *slot = Some(Special::Plain(s.clone())),
                    Some(Value::Object(d)) => *slot = Some(Special::Token(AddedToken::from_dict(d, true, MAP)?)),
                    _ => {}
                }
            }
        }
        let values: Vec<Special> =
            values.into_iter().zip(defaults).map(|(v, d)| v.unwrap_or_else(|| Special::Plain(d.into()))).collect();

        // `TokenizersBackend.__init__`: the decoder's tokens by index, then the named ones not yet
        // added; `_post_init`: every named one again (this is where their final flags come from).
        for (_, t) in &decoder {
            self.add_token(t.clone());
        }
        for v in &values {
            if !decoder.iter().any(|(_, t)| t.content == v.content()) {
                self.add_token(v.to_added());
            }
        }
        let ids: Vec<u32> = values.iter().map(|v| self.add_token(v.to_added())).collect();
        (self.bos_id, self.eos_id, self.pad_id) = (ids[0], ids[1], ids[3]);
        // The BPE model's own unknown symbol is looked up in vocab.json only (`BPE(unk_token=...)`).
        self.unk_id = self.vocab.get(values[2].content()).copied();

        for (&id, t) in &self.added {
            if t.normalized {
                self.normalized_patterns.push((self.normalize(&t.content), id));
            } else {
                self.raw_patterns.push((t.content.clone(), id));
            }
        }
        // Deterministic choice between equal patterns (a HashMap has no order).
        self.raw_patterns.sort_by_key(|p| p.1);
        self.normalized_patterns.sort_by_key(|p| p.1);
        self.max_length = match config.get("model_max_length").and_then(Value::as_f64) {
            // transformers writes ~1e30 for "no limit"; CLIP's text encoder has 77 positions.
            None => CLIP_MAX_LENGTH,
            Some(n) if n > 1e6 => CLIP_MAX_LENGTH,
            Some(n) if n >= 2.0 && n.fract() == 0.0 => n as usize,
            Some(n) => {
                return Err(TokenizerError::Config {
                    file: CONFIG,
                    reason: format!("model_max_length {n} leaves no room for BOS and EOS (77 for CLIP)"),
                });
            }
        };
        Ok(())
    }

    /// `AddedVocabulary::add_tokens`: an existing string keeps its id (added first, then vocab.json),
    /// a new one gets the next id after the vocabulary; the latest flags replace older ones.
    fn add_token(&mut self, token: AddedToken) -> u32 {
        let existing = self.added.iter().find(|(_, t)| t.content == token.content).map(|(&id, _)| id);
        let id = existing.or_else(|| self.vocab.get(&token.content).copied()).unwrap_or_else(|| {
            let base = self.vocab.len() as u32;
            match self.added.keys().max() {
                Some(&max) if max >= base => max + 1,
                _ => base,
            }
        });
        self.added.insert(id, token);
        id
    }

    /// `normalizers.Sequence([NFC(), Replace(Regex(r"\s+"), " "), Lowercase()])`.
    fn normalize(&self, text: &str) -> String {
        let nfc: String = text.nfc().map(|(c, _)| c).collect();
        let spaced = self.whitespace.replace_all(&nfc, " ");
        spaced.chars().flat_map(char::to_lowercase).collect()
    }

    /// Prompt → `max_length` ids: BOS, tokens (truncated to `max_length - 2`), EOS, PAD.
    pub fn encode(&self, text: &str) -> Encoding {
        let mut words = self.tokenize_words(text);
        let room = self.max_length - 2;
        let truncated = words.len() > room;
        words.truncate(room);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(words);
        ids.push(self.eos_id);
        let n_tokens = ids.len();
        ids.resize(self.max_length, self.pad_id);
        Encoding { ids, n_tokens, truncated }
    }

    /// The prompt's ids without BOS/EOS/padding and untruncated (`add_special_tokens=False`):
    /// erasure methods find a concept word's token positions with it.
    pub fn tokenize_words(&self, text: &str) -> Vec<u32> {
        self.tokenize_words_recording(text, &mut Vec::new())
    }

    /// The ranks of the merges BPE applied to `text`, in the order applied (with repeats): a
    /// merges list that keeps all of them, in rank order, splits `text` the same way, since BPE
    /// always applies the lowest-ranked merge present (`tokenizer_subset.rs` builds on this).
    pub fn merge_ranks_used(&self, text: &str) -> Vec<u32> {
        let mut used = Vec::new();
        self.tokenize_words_recording(text, &mut used);
        used
    }

    /// Every merge as `(left, right)` token strings, in rank order (merges.txt without its header).
    pub fn merges_in_rank_order(&self) -> Vec<(String, String)> {
        let mut v: Vec<(u32, String, String)> = self
            .merges
            .iter()
            .filter_map(|(&(a, b), &(rank, _))| {
                Some((rank, self.id_to_token.get(&a)?.clone(), self.id_to_token.get(&b)?.clone()))
            })
            .collect();
        v.sort_by_key(|m| m.0);
        v.into_iter().map(|(_, a, b)| (a, b)).collect()
    }

    fn tokenize_words_recording(&self, text: &str, used: &mut Vec<u32>) -> Vec<u32> {
        let mut ids = Vec::new();
        for (raw, raw_id) in self.split_added(text, &self.raw_patterns) {
            if let Some(id) = raw_id {
                ids.push(id);
                continue;
            }
            let normalized = self.normalize(raw);
            for (piece, id) in self.split_added(&normalized, &self.normalized_patterns) {
                match id {
                    Some(id) => ids.push(id),
                    None => self.pre_tokenize_and_bpe(piece, &mut ids, used),
                }
            }
        }
        ids
    }

    fn pre_tokenize_and_bpe(&self, text: &str, ids: &mut Vec<u32>, used: &mut Vec<u32>) {
        for m in self.pre_tokenizer.find_iter(text) {
            let word = m.as_str();
            // `ByteLevel` runs the GPT-2 regex again on each piece; on CLIP's pieces it only ever
            // splits the two special-token spellings (which reach here only when not matched as added
            // tokens, e.g. upper-cased): `<|` + `endoftext` + `|>`.
            if let Some(inner) = word.strip_prefix("<|").and_then(|w| w.strip_suffix("|>")) {
                for part in ["<|", inner, "|>"] {
                    self.bpe(part, ids, used);
                }
            } else {
                self.bpe(word, ids, used);
            }
        }
    }

    /// One pre-token through byte-level BPE (`BPE::merge_word` + `Word::merge_all`).
    fn bpe(&self, word: &str, ids: &mut Vec<u32>, used: &mut Vec<u32>) {
        let bytes = word.as_bytes();
        let mut symbols: Vec<u32> = Vec::with_capacity(bytes.len());
        for (i, &b) in bytes.iter().enumerate() {
            let id = if i + 1 == bytes.len() { self.byte_end_ids[b as usize] } else { self.byte_ids[b as usize] };
            // `fuse_unk=False`: one UNK per unknown symbol; without an UNK in vocab.json the symbol
            // is dropped (`tokenizers` would raise instead).
            if let Some(id) = id.or(self.unk_id) {
                symbols.push(id);
            }
        }
        if symbols.is_empty() {
            return;
        }
        // A doubly linked list over `symbols`; `alive[i]` false once merged into its left neighbour.
        let n = symbols.len();
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
        let mut alive = vec![true; n];
        // Min-heap on (rank, position), as `Merge`'s `Ord` in word.rs.
        let mut queue: BinaryHeap<Reverse<(u32, usize, u32)>> = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some(&(rank, new_id)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
                queue.push(Reverse((rank, i, new_id)));
            }
        }
        while let Some(Reverse((rank, pos, new_id))) = queue.pop() {
            if !alive[pos] || next[pos] >= n {
                continue;
            }
            let right = next[pos];
            // A stale entry: one of the two symbols has changed since it was queued.
            if self.merges.get(&(symbols[pos], symbols[right])).map(|m| m.1) != Some(new_id) {
                continue;
            }
            used.push(rank);
            symbols[pos] = new_id;
            alive[right] = false;
            next[pos] = next[right];
            if next[pos] < n {
                prev[next[pos]] = Some(pos);
            }
            // The new symbol forms new pairs with both neighbours.
            if let Some(p) = prev[pos]
                && let Some(&(rank, id)) = self.merges.get(&(symbols[p], symbols[pos]))
            {
                queue.push(Reverse((rank, p, id)));
            }
            if next[pos] < n
                && let Some(&(rank, id)) = self.merges.get(&(symbols[pos], symbols[next[pos]]))
            {
                queue.push(Reverse((rank, pos, id)));
            }
        }
        ids.extend((0..n).filter(|&i| alive[i]).map(|i| symbols[i]));
    }

    /// `AddedVocabulary::find_matches`: leftmost-longest, non-overlapping matches of `patterns`,
    /// then the `single_word` / `lstrip` / `rstrip` rules. Returns the pieces in order, with the id of
    /// those that are added tokens.
    fn split_added<'a>(&self, text: &'a str, patterns: &[(String, u32)]) -> Vec<(&'a str, Option<u32>)> {
        let mut pieces = Vec::new();
        let mut start_offset = 0;
        let mut pos = 0;
        while pos < text.len() && !patterns.is_empty() {
            let rest = &text.as_bytes()[pos..];
            let best = patterns
                .iter()
                .filter(|(p, _)| !p.is_empty() && rest.starts_with(p.as_bytes()))
                .max_by_key(|(p, _)| p.len());
            let Some((pattern, id)) = best else {
                pos += text[pos..].chars().next().map_or(1, char::len_utf8);
                continue;
            };
            let (mut start, mut stop) = (pos, pos + pattern.len());
            pos = stop;
            let Some(token) = self.added.get(id) else { continue };
            if token.single_word
                && (self.word_at_end.is_match(&text[..start]) || self.word_at_start.is_match(&text[stop..]))
            {
                continue;
            }
            if token.lstrip {
                start = text[..start].trim_end_matches(char::is_whitespace).len().max(start_offset);
            }
            if token.rstrip {
                // The trie walk goes on from the match end, not from the stripped end (as there).
                stop = text.len() - text[stop..].trim_start_matches(char::is_whitespace).len();
            }
            if start_offset < start {
                pieces.push((&text[start_offset..start], None));
            }
            pieces.push((&text[start..stop], Some(*id)));
            start_offset = stop;
        }
        if start_offset < text.len() || pieces.is_empty() {
            pieces.push((&text[start_offset..], None));
        }
        pieces
    }

    /// The token string of an id as vocab.json spells it (`cat</w>`, byte-level characters), or an
    /// added token's content; `None` for an unknown id.
    pub fn decode_token(&self, id: u32) -> Option<&str> {
        self.added.get(&id).map(|t| t.content.as_str()).or_else(|| self.id_to_token.get(&id).map(String::as_str))
    }

    /// The id of a token string (vocab.json spelling, or an added token), if any.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|(_, t)| t.content == token)
            .map(|(&id, _)| id)
            .or_else(|| self.vocab.get(token).copied())
    }

    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }
    /// 49407 (`<|endoftext|>`) for SD 1.x, 0 (`!`) for SD 2.x.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
    /// Id of the symbol that stands for bytes vocab.json lacks (`<|endoftext|>` for CLIP).
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }
    /// Length of every `Encoding::ids` (`model_max_length`, 77 for CLIP).
    pub fn max_length(&self) -> usize {
        self.max_length
    }
    /// `len(tokenizer)`: vocab.json's tokens plus added tokens that are not in it.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len() + self.added.values().filter(|t| !self.vocab.contains_key(&t.content)).count()
    }
    /// The largest token id it can produce, with its token (vocab.json or an added token).
    pub fn max_id(&self) -> Option<(u32, &str)> {
        let vocab = self.vocab.iter().map(|(t, &id)| (id, t.as_str()));
        let added = self.added.iter().map(|(&id, t)| (id, t.content.as_str()));
        vocab.chain(added).max_by_key(|&(id, _)| id)
    }
}

/// GPT-2's byte → printable character table (CLIP `simple_tokenizer.py` `bytes_to_unicode`), in the
/// order CLIP numbers the byte tokens: printable bytes first, then the rest mapped to U+0100 onward.
/// The vocabulary that follows from a merges list, in id order, as CLIP's simple_tokenizer.py (and
/// scripts/reference/clip_bpe.py) builds it: bytes, bytes + `</w>`, one token per merge, specials.
pub(crate) fn clip_vocab_order<'a>(merges: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    let byte_chars = bytes_to_unicode();
    let mut order: Vec<String> = byte_chars.iter().map(|&(_, c)| c.to_string()).collect();
    order.extend(byte_chars.iter().map(|&(_, c)| format!("{c}{END_OF_WORD}")));
    order.extend(merges.into_iter().map(|(a, b)| format!("{a}{b}")));
    order.push("<|startoftext|>".into());
    order.push("<|endoftext|>".into());
    order
}

fn bytes_to_unicode() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut table: Vec<(u8, char)> = (0..=255u8).filter(|&b| printable(b)).map(|b| (b, char::from(b))).collect();
    let others = (0..=255u8).filter(|&b| !printable(b));
    table.extend(others.enumerate().map(|(n, b)| (b, char::from_u32(256 + n as u32).unwrap_or('\u{FFFD}'))));
    table
}

/// Exposed for the parity test of the per-character tables (normalizer and regex classes).
#[doc(hidden)]
pub fn debug_normalize_and_split(tok: &ClipTokenizer, text: &str) -> (String, Vec<String>) {
    let normalized = tok.normalize(text);
    let pieces = tok.pre_tokenizer.find_iter(text).map(|m| m.as_str().to_string()).collect();
    (normalized, pieces)
}
