//! The studio's limits, defined once. The page's form checks them before a request leaves it;
//! the Session checks them again. `web/generated/limits.ts` is written from [`typescript`]
//! (test `crates/erasure/tests/limits_ts.rs` fails when the committed file is stale; run it with
//! `UPDATE_GENERATED=1` to rewrite it).

/// Largest image side the studio accepts (pixels): above it a single attention map no longer
/// fits the WebGPU buffer limits of common adapters.
pub const MAX_SIDE: usize = 2048;
/// Most steps in one run.
pub const MAX_STEPS: usize = 500;
/// Largest classifier-free guidance scale (0 to this, inclusive).
pub const MAX_GUIDANCE: f64 = 50.0;
/// Largest seed the page offers (its form and share links); the engine takes any `u64`.
pub const MAX_SEED: u64 = u32::MAX as u64;
/// Most f32 weight bytes the CPU path loads (wasm32 memory stops at 4 GiB; the rest is for
/// activations, the tokenizer and the engine itself).
pub const CPU_WEIGHT_LIMIT: usize = 3_000_000_000;

/// The TypeScript module of these limits (`web/generated/limits.ts`).
pub fn typescript() -> String {
    let items: [(&str, &str, String); 5] = [
        ("MAX_SIDE", "Largest image side (pixels).", MAX_SIDE.to_string()),
        ("MAX_STEPS", "Most steps in one run.", MAX_STEPS.to_string()),
        ("MAX_GUIDANCE", "Largest guidance scale (0 to this, inclusive).", format!("{MAX_GUIDANCE}")),
        ("MAX_SEED", "Largest seed the page offers.", MAX_SEED.to_string()),
        ("CPU_WEIGHT_LIMIT", "Most f32 weight bytes the CPU path loads.", CPU_WEIGHT_LIMIT.to_string()),
    ];
    let mut out = String::from(
        "// Generated from crates/erasure/src/request/limits.rs: do not edit. To update, run\n\
         // UPDATE_GENERATED=1 cargo test -p erasure --test limits_ts\n",
    );
    for (name, doc, value) in items {
        out.push_str(&format!("\n/** {doc} */\nexport const {name} = {value};\n"));
    }
    out
}
