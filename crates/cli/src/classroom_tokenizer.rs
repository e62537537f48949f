//! `studio classroom-tokenizer`: writes the classroom model's tokenizer folder — CLIP's BPE cut to
//! its first merges plus every merge any word of the classroom world needs in SD's full tokenizer
//! (`pipeline::tokenizer_subset`), so every world word splits exactly as in Stable Diffusion.
//! The committed copy is `scripts/classroom/tokenizer/`; `scripts/classroom/train.py` exports it
//! with the model, and `crates/pipeline/tests/classroom_tokenizer.rs` checks that it is current.

use anyhow::{Context, Result};
use pipeline::tokenizer::ClipTokenizer;
use pipeline::tokenizer_subset::{CLASSROOM_BASE_MERGES, closed_subset};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct TokenizerArgs {
    /// The tokenizer folder to write (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json).
    #[arg(long)]
    pub out: PathBuf,
    /// How many of CLIP's first merges to keep besides the world's.
    #[arg(long, default_value_t = CLASSROOM_BASE_MERGES)]
    pub base_merges: usize,
}

pub fn run(a: TokenizerArgs) -> Result<()> {
    let full = ClipTokenizer::builtin()?;
    let files = closed_subset(&full, a.base_merges, &classroom::vocabulary::world_phrases());
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    for (name, text) in [
        ("vocab.json", &files.vocab_json),
        ("merges.txt", &files.merges_txt),
        ("special_tokens_map.json", &files.special_tokens_map_json),
        ("tokenizer_config.json", &files.tokenizer_config_json),
    ] {
        let p = a.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    println!(
        "{}: {} tokens ({} base merges + {} the world's words need beyond them)",
        a.out.display(),
        files.n_tokens,
        a.base_merges,
        files.extra_ranks.len()
    );
    Ok(())
}
