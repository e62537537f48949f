# Shared environment of the npm scripts and CI: cargo's target dir and caches live outside the
# clone so that a fresh clone on the same machine reuses a warm build (a cold burn build takes
# ~20 minutes on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/erasure-studio/target}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || export CARGO_TARGET_DIR="$PWD/target"
# Vulkan (llvmpipe) for the wgpu path without a GPU needs a private runtime dir.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/erasure-studio-xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
