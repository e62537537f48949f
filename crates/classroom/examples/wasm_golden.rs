//! Exposes the golden checksum of `tests/render.rs` from a wasm32 module, to check that renders
//! are bit-identical in the browser's arithmetic. See README.md for the two commands.

/// FNV-1a 64 of the first 64 training renders + captions of seed 0 (the test's golden value).
#[unsafe(no_mangle)]
pub extern "C" fn golden_hash() -> u64 {
    let mut bytes = Vec::new();
    for i in 0..64 {
        let (_, text, image) = classroom::example(0, i, classroom::Split::Train);
        bytes.extend_from_slice(&image);
        bytes.extend_from_slice(text.as_bytes());
    }
    classroom::fnv1a64(&bytes)
}
