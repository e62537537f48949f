//! `web/generated/limits.ts` is what `erasure::request::limits::typescript()` writes: the page
//! and the engine cannot disagree on a limit. `UPDATE_GENERATED=1` rewrites the file.

#[test]
fn the_committed_typescript_limits_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/generated/limits.ts");
    let want = erasure::request::limits::typescript();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "{path} is stale: run `UPDATE_GENERATED=1 cargo test -p erasure --test limits_ts` and commit it"
    );
    assert!(want.contains("export const MAX_STEPS = 500;") && want.contains("export const MAX_SIDE = 2048;"), "{want}");
}
