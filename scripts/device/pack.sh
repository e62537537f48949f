#!/usr/bin/env bash
# Prepares, on the development machine, the payloads of the two real-GPU calls (README.md here):
#   .gl/    Vulkan/EGL loader debs (the GPU image has the NVIDIA driver but no loader)
#   .dev1/  studio.xz (stripped release CLI), the diffusers wheel, classroom.tar.xz (model components
#           only), chr.aa (first part of chromium-headless-shell + its libraries, xz)
#   .dev2/  chr.ab (the rest), dist.tar.xz (web/dist without models), index.json (classroom only)
# Each call's working tree is at most 64 MiB and the repository is larger, so the calls are made
# from a branch that keeps only scripts/ and two small fixtures (README.md).
# Needs: a release `studio` (cargo build --release -p cli), web/dist (scripts/build-web.sh), and the
# Debian package chromium-headless-shell installed here.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
. scripts/env.sh
S=${STAGE:-/tmp/stage}
A_BYTES=${A_BYTES:-26000000}
mkdir -p "$S" .gl .dev1 .dev2
for p in /.gl/ /.dev1/ /.dev2/; do grep -qx "$p" .git/info/exclude || echo "$p" >> .git/info/exclude; done
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial && apt-get $o update -q >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
# The headless shell, the files it reads, SwiftShader (fallback), DejaVu fonts, and every shared
# library it links except glibc's and libgcc's (the GPU image is another distribution).
B=$S/chr; rm -rf "$B"; mkdir -p "$B/lib" "$B/locales" "$B/fonts"
C=/usr/lib/chromium
cp $C/chromium-headless-shell $C/headless_*.pak $C/icudtl.dat $C/snapshot_blob.bin $C/v8_context_snapshot.bin \
   $C/libvulkan.so.1 $C/libEGL.so $C/libGLESv2.so $C/libvk_swiftshader.so $C/vk_swiftshader_icd.json "$B/"
cp $C/locales/en-US.pak "$B/locales/"
for l in $(ldd $C/chromium-headless-shell | awk '$3 ~ /^\// {print $3}'); do
  case $(basename "$l") in libc.so.6|libm.so.6|libpthread.so.0|libgcc_s.so.1|libdl.so.2|librt.so.1) ;; *) cp -L "$l" "$B/lib/";; esac
done
cp -rL /usr/lib/x86_64-linux-gnu/nss "$B/lib/"
cp -r /usr/share/fonts/truetype/dejavu "$B/fonts/"
printf '<?xml version="1.0"?>\n<fontconfig><dir prefix="relative">dejavu</dir><cachedir>/tmp/fc-cache</cachedir></fontconfig>\n' > "$B/fonts/fonts.conf"
tar -C "$B" -cf - . | xz -T2 --x86 --lzma2=preset=9e,dict=256MiB > "$S/chr.tar.xz"
rm -f .dev1/chr.* .dev2/chr.*
head -c "$A_BYTES" "$S/chr.tar.xz" > .dev1/chr.aa
tail -c +$((A_BYTES + 1)) "$S/chr.tar.xz" > .dev2/chr.ab
cp "$CARGO_TARGET_DIR/release/studio" "$S/studio" && strip "$S/studio" && xz -T2 -9 -c "$S/studio" > .dev1/studio.xz
ls .whl/diffusers-0.42.1-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl diffusers==0.42.1
cp .whl/diffusers-0.42.1-*.whl .dev1/
tar -C models -cf - classroom/model_index.json classroom/text_encoder classroom/tokenizer classroom/unet classroom/vae classroom/scheduler | xz -T2 -9 > .dev1/classroom.tar.xz
(cd web/dist && tar --exclude=./models -cf - . | xz -T2 -9 > "$OLDPWD/.dev2/dist.tar.xz")
python3 -c "import json; j = json.load(open('web/dist/models/index.json')); j['models'] = [m for m in j['models'] if m['id'] == 'classroom']; json.dump(j, open('.dev2/index.json', 'w'))"
du -ch .gl .dev1 | tail -1; du -ch .dev2 | tail -1
ls -la .dev1 .dev2
