#!/usr/bin/env bash
# Real-GPU checks, call 2 of 2 (scripts/device/README.md): the studio page in Chromium's headless
# shell on the GPU machine's Vulkan driver, driven by page_gpu.py. Needs call 1's /tmp/dev (same warm
# machine). Carried: .dev2 (chr.ab = the rest of Chromium, dist.tar.xz = web/dist without models,
# index.json = the bundled-model index with the classroom model only).
set -uo pipefail
D=${DEV_DIR:-/tmp/dev}
O=${OUT:-/tmp/out}
mkdir -p "$O"
exec > >(tee "$O/page.log") 2>&1
[ -f "$D/chr.aa" ] && [ -d "$D/sd15-random/unet" ] || { echo "call 1's /tmp/dev is missing (a fresh machine?): run gpu_native.sh first"; exit 3; }
# The NVIDIA driver's Vulkan ICD and EGL vendor files (KINDS.md / device README), where they exist.
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json ] && export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p "$D/chr" "$D/dist/models"
cat "$D/chr.aa" .dev2/chr.ab | xz -dc | tar -C "$D/chr" -x || { echo "chromium bundle did not unpack"; exit 4; }
tar -C "$D/dist" -xJf .dev2/dist.tar.xz
cp -r "$D/classroom" "$D/dist/models/classroom"
cp .dev2/index.json "$D/dist/models/index.json"
export FONTCONFIG_FILE=$D/chr/fonts/fonts.conf PYTHONUNBUFFERED=1
LD_LIBRARY_PATH=$D/chr/lib "$D/chr/chromium-headless-shell" --version
# Flags tried in order; the first that gives the page a non-fallback adapter is used. FL is the
# recipe for headless Chrome with WebGPU on Linux + NVIDIA (Vulkan for Dawn and ANGLE, no surface).
FL="--use-angle=vulkan --enable-features=Vulkan --disable-vulkan-surface"
FL2="--use-angle=vulkan --enable-features=Vulkan,VulkanFromANGLE,DefaultANGLEVulkan --use-vulkan=native --disable-vulkan-surface --ignore-gpu-blocklist --enable-gpu --disable-gpu-sandbox"
# Candidates for an adapter that offers shader-f16 (the page's f16 path).
F16A="--enable-dawn-features=allow_unsafe_apis"
F16B="--enable-webgpu-developer-features --enable-dawn-features=allow_unsafe_apis --enable-features=Vulkan,WebGPUExperimentalFeatures"
timeout 500 python3 scripts/device/page_gpu.py --chromium "$D/chr/chromium-headless-shell" --dist "$D/dist" --out "$O" --lib "$D/chr/lib" \
  --only "${ONLY:-classroom,sd15}" --hub-repo "erasure-studio/sd15-random=$D/sd15-random" --sd15-size "${SD15_SIZE:-512}" --sd15-steps "${SD15_STEPS:-4}" --probe "${PROBE:-$FL|$FL $F16A|$FL $F16B|$FL2| }" ${PAGE_ARGS:-}
python3 - "$O" "$D" <<'PY'
import sys, json, numpy as np
from PIL import Image
o, d = sys.argv[1:]
try:
    j = json.load(open(f"{o}/page_gpu.json"))
    f16 = "f16" in (j["sd15"].get("engine") or "")
    cli = np.asarray(Image.open(f"{d}/sd15b{'_f16' if f16 else ''}_cli.png").convert("RGB")).astype(int)
    print("page engine:", j["sd15"].get("engine"), "-> compared with", "studio generate --dtype f16" if f16 else "studio generate (f32)")
    w, h = j["sd15"]["image"]["width"], j["sd15"]["image"]["height"]
    page = np.frombuffer(open(f"{o}/sd15_page.rgba", "rb").read(), np.uint8).reshape(h, w, 4)[..., :3].astype(int)
    dlt = np.abs(page - cli)
    print(json.dumps({"sd15_page_vs_cli": {"max": int(dlt.max()), "mean": float(dlt.mean()), "over2": int((dlt.max(-1) > 2).sum()), "pixels": w * h,
          "distinct_page_values": int(len(np.unique(page.reshape(-1, 3), axis=0)))}}))
except Exception as e:
    print("compare failed:", e)
PY
