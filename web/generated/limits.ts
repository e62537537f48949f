// Generated from crates/erasure/src/request/limits.rs: do not edit. To update, run
// UPDATE_GENERATED=1 cargo test -p erasure --test limits_ts

/** Largest image side (pixels). */
export const MAX_SIDE = 2048;

/** Most steps in one run. */
export const MAX_STEPS = 500;

/** Largest guidance scale (0 to this, inclusive). */
export const MAX_GUIDANCE = 50;

/** Largest seed the page offers. */
export const MAX_SEED = 4294967295;

/** Most f32 weight bytes the CPU path loads. */
export const CPU_WEIGHT_LIMIT = 3000000000;
