#!/usr/bin/env bash
# Real-GPU checks, call 1 of 2 (scripts/device/README.md): native wgpu on the GPU machine's Vulkan
# driver vs PyTorch CUDA, and an SD 1.5-shaped model made there for call 2's page test.
# Carried: .gl (Vulkan/EGL loaders, Debian debs), .dev1 (studio.xz, diffusers wheel, classroom.tar.xz,
# chr.aa = the first part of Chromium's headless shell). Keeps what call 2 needs in /tmp/dev.
set -uo pipefail
D=${DEV_DIR:-/tmp/dev}
O=${OUT:-/tmp/out}
mkdir -p "$D" "$O"
exec > >(tee "$O/native.log") 2>&1
t0=$(date +%s)
stamp() { echo "== +$(( $(date +%s) - t0 )) s: $*"; }
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export XDG_RUNTIME_DIR=/tmp/xdg; mkdir -p -m 700 $XDG_RUNTIME_DIR
# The NVIDIA driver's Vulkan ICD and EGL vendor files (KINDS.md / device README), where they exist.
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
ls -la "${VK_DRIVER_FILES:-/no-nvidia-icd}" || ls /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
cp .dev1/chr.aa "$D/"
xz -dc .dev1/studio.xz > "$D/studio" && chmod +x "$D/studio"
tar -C "$D" -xJf .dev1/classroom.tar.xz
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev1/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc

stamp "SD 1.5-shaped random model"
timeout 150 python3 scripts/reference/make_sd15_random.py "$D/sd15-random" | tail -3

if [ -z "${SKIP_BASELINES:-}" ]; then
stamp "PyTorch CUDA baseline (fp32, fp16)"
timeout 150 python3 scripts/reference/bench_diffusers.py --cuda --no-cpu-sd15 --model "$D/classroom" --repeats 5 --out "$O/torch.json" | tail -20
fi

gen() { # name model size steps [studio generate flags…]
  local peak=$D/peak-$1; echo 0 > "$peak"
  ( while sleep 0.2; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; done | awk -v f="$peak" '$1>m{m=$1; print m > f; close(f)}' ) &
  local mon=$!
  local s=$(date +%s%N)
  timeout 150 "$D/studio" generate --model "$2" --prompt "a big red star on a blue striped background" --seed 1234 --steps "$4" \
    --guidance 7.5 --scheduler ddim --height "$3" --width "$3" --device wgpu "${@:5}" --out "$D/$1_cli.png" 2>&1 | tr '\r' '\n' | tail -2
  echo "$1: wall $(( ($(date +%s%N) - s) / 1000000 )) ms, peak GPU memory $(cat "$peak") MiB (nvidia-smi, whole GPU)"
  kill $mon 2>/dev/null; wait $mon 2>/dev/null
  case $1 in classroom2*|sd15b*) cp "$D/$1_cli.png" "$O/" 2>/dev/null;; esac
}
stamp "studio generate --device wgpu (first run compiles shaders), precisions: ${DTYPES:=f32}"
for dt in $DTYPES; do
  sfx=$([ "$dt" = f32 ] || echo "_$dt")
  gen "classroom$sfx" "$D/classroom" 64 10 --dtype "$dt"
  gen "classroom2$sfx" "$D/classroom" 64 10 --dtype "$dt"
  gen "sd15$sfx" "$D/sd15-random" 512 4 --dtype "$dt"
  gen "sd15b$sfx" "$D/sd15-random" 512 4 --dtype "$dt"
done

if [ -z "${SKIP_BASELINES:-}" ]; then
stamp "studio bench --devices wgpu (against the PyTorch CUDA numbers above)"
timeout 200 "$D/studio" bench --devices wgpu --model "$D/classroom" --repeats 5 --baseline "$O/torch.json" --json "$O/ours.json" 2>&1 | tail -30
fi
stamp done
ls -la "$D"
