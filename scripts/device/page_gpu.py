"""The studio page on a real GPU, driven without Node: a GPU machine of ours has Python but no Node,
npm packages or network, so this replaces tests/browser/bench.mjs + large.mjs there.

 - serves the built page (web/dist) like `vite preview`, plus a hub mirror for model folders
   (the same answers as vite.config.ts's STUDIO_HUB_MIRROR: the tree API with LFS SHA-256s and
   `resolve/` downloads with Range), with Python's standard library;
 - drives Chromium's headless shell over the DevTools protocol on a pipe (--remote-debugging-pipe);
 - measures, each in a fresh browser profile: which WebGPU adapter the page gets, page load → first
   image and time per denoising step for the bundled models (as bench.mjs: 10 DDIM steps, guidance
   7.5, seed 1234), and for an SD 1.5-shaped hub model: download + verify + load, then a 512 px
   generation whose pixels are saved for comparison with `studio generate --device wgpu`.

Writes OUT/page_gpu.json, OUT/page_*.png (screenshots) and OUT/sd15_page.rgba (raw RGBA pixels).

Run: python3 page_gpu.py --chromium DIR/chromium-headless-shell --dist web/dist --out OUT \
        [--hub-repo owner/name=DIR] [--sd15-steps 4] [--flags "..."]
"""
import argparse
import base64
import fcntl
import hashlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

PROMPT = "a big red star on a blue striped background"
STEPS = 10
REPEATS = 3
COMPONENTS = {"text_encoder", "tokenizer", "unet", "vae", "scheduler"}


def log(*a):
    print("[page-gpu]", *a, flush=True)


# ------------------------------------------------------------------ server


def model_files(root: Path):
    """model_index.json and the five components' files (vite.config.ts `modelFiles`)."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file():
            continue
        if rel == "model_index.json" or rel.split("/")[0] in COMPONENTS:
            if not re.search(r"\.(bin|ckpt|pt|pth|msgpack|h5|onnx)$", p.name):
                out.append((rel, p.stat().st_size))
    return out


class Handler(SimpleHTTPRequestHandler):
    repos: dict = {}
    shas: dict = {}
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript"}

    def log_message(self, *a):
        pass

    def sha(self, path: Path) -> str:
        if path not in self.shas:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 24):
                    h.update(chunk)
            self.shas[path] = h.hexdigest()
        return self.shas[path]

    def do_GET(self):
        path = unquote(urlparse(self.path).path)
        m = re.match(r"^/hub-mirror/(.*)$", path)
        if not m:
            return super().do_GET()
        rest = m.group(1)
        tree = re.match(r"^api/models/(.+)/tree/main$", rest)
        if tree and tree.group(1) in self.repos:
            d = self.repos[tree.group(1)]
            body = json.dumps([
                {"type": "file", "path": p, "size": s, "oid": "0" * 40,
                 **({"lfs": {"oid": self.sha(d / p), "size": s, "pointerSize": 134}} if p.endswith(".safetensors") else {})}
                for p, s in model_files(d)
            ]).encode()
            return self.reply(200, body, "application/json")
        res = re.match(r"^(.+?/.+?)/resolve/main/(.+)$", rest)
        d = self.repos.get(res.group(1)) if res else None
        if not d or not (d / res.group(2)).is_file():
            return self.reply(404, b"Entry not found", "text/plain")
        full = d / res.group(2)
        size = full.stat().st_size
        r = re.match(r"^bytes=(\d+)-$", self.headers.get("range") or "")
        start = int(r.group(1)) if r else 0
        if start > size:
            return self.reply(416, b"Range Not Satisfiable", "text/plain")
        self.send_response(206 if r else 200)
        self.send_header("access-control-allow-origin", "*")
        self.send_header("accept-ranges", "bytes")
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(size - start))
        self.send_header("etag", '"%s"' % self.sha(full)[:16])
        if r:
            self.send_header("content-range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        with open(full, "rb") as f:
            f.seek(start)
            while chunk := f.read(1 << 22):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return

    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header("access-control-allow-origin", "*")
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(dist: Path, repos: dict):
    Handler.repos = repos
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(dist)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


# ------------------------------------------------------------------ DevTools over a pipe


class Browser:
    """Chromium with --remote-debugging-pipe: we write NUL-terminated JSON to its fd 3, read from its fd 4."""

    def __init__(self, exe: str, flags: list, env: dict):
        self.profile = tempfile.mkdtemp(prefix="studio-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        # The child's fds 3 and 4 are set after fork (high numbers first, so neither dup2 clobbers
        # the other's source); subprocess then keeps 3 and 4 open (pass_fds).
        hi_r, hi_w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 100), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 100)

        def fds():
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile}", *flags, "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, env=env,
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.profile, "stderr.log"), "wb"),
        )
        for fd in (to_chrome_r, from_chrome_w, hi_r, hi_w):
            os.close(fd)
        self.buf = b""
        self.next_id = 0
        self.session = None
        self.console = []
        try:
            target = self.call("Target.createTarget", _timeout=30, url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Runtime.enable")
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=1280, height=860, deviceScaleFactor=1, mobile=False)
        except Exception:
            self.close()
            raise

    def _read(self, timeout=120):
        while b"\0" not in self.buf:
            if not select.select([self.from_chrome], [], [], timeout)[0]:
                raise TimeoutError(f"chromium did not answer in {timeout} s: " + self.stderr_tail()[-1500:])
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: " + self.stderr_tail())
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, _timeout=120, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            r = self._read(_timeout)
            if r.get("id") == self.next_id:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r.get("result", {})
            if r.get("method") == "Runtime.consoleAPICalled" and r["params"].get("type") in ("error", "warning"):
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in r["params"]["args"]))
            if r.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: " + json.dumps(r["params"]["exceptionDetails"].get("exception", {}).get("description", ""))[:500])

    def eval(self, expr, timeout=60):
        r = self.call("Runtime.evaluate", _timeout=timeout + 30, expression=expr, awaitPromise=True, returnByValue=True, timeout=timeout * 1000)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page: {r['exceptionDetails'].get('exception', {}).get('description') or r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, timeout, poll=0.05):
        t = time.time()
        while time.time() - t < timeout:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(poll)
        raise TimeoutError(f"timed out after {timeout} s waiting for {expr[:120]}; error box: {self.error()}")

    def goto(self, url):
        self.call("Page.navigate", url=url)

    def error(self):
        return self.eval("(() => { const e = document.querySelector('[data-testid=\"error\"]'); return e && !e.hidden ? e.textContent.replace(/\\s+/g, ' ').trim() : null })()")

    def screenshot(self, path):
        Path(path).write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def stderr_tail(self):
        try:
            return Path(self.profile, "stderr.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def close(self):
        try:
            if self.proc.poll() is None:
                self.session = None
                self.call("Browser.close", _timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])


ADAPTER_JS = """(async () => {
  if (!navigator.gpu) return { error: 'no navigator.gpu' };
  const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!a) return { error: 'requestAdapter returned null' };
  const i = a.info || {};
  return { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
           isFallbackAdapter: i.isFallbackAdapter, shaderF16: a.features.has('shader-f16'),
           maxBufferSize: a.limits.maxBufferSize, maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize };
})()"""

READY = "!!(window.__studio && window.__studio.ready())"
ENGINE = "(document.querySelector('[data-testid=\"engine\"]') || {}).textContent"


def set_field(b, testid, value):
    b.eval(f"""(() => {{ const e = document.querySelector('[data-testid="{testid}"]');
      e.value = {json.dumps(str(value))}; e.dispatchEvent(new Event('input', {{bubbles: true}}));
      e.dispatchEvent(new Event('change', {{bubbles: true}})); return e.value }})()""")


def click(b, testid):
    b.eval(f"document.querySelector('[data-testid=\"{testid}\"]').click()")


def generate_n(b, n, timeout):
    """Clicks Generate n times, each after the last image; returns window.__studio.timings."""
    for i in range(n):
        before = b.eval("window.__studio.timings.length")
        click(b, "generate")
        b.wait(f"(window.__studio.timings.length > {before} && window.__studio.ready()) || !!(document.querySelector('[data-testid=\"error\"]') && !document.querySelector('[data-testid=\"error\"]').hidden && window.__studio.ready())", timeout)
        if b.eval("window.__studio.timings.length") <= before:
            raise RuntimeError(f"generation failed in the page: {b.error()}")
    return b.eval("window.__studio.timings")


def bundled_run(exe, flags, env, url, model, size, out):
    b = Browser(exe, flags, env)
    try:
        t0 = time.time()
        b.goto(f"{url}?model={model}#p={PROMPT.replace(' ', '%20')}&seed=1234&steps={STEPS}&g=7.5&size={size}&sch=ddim&prev=0")
        b.wait(READY + " || !!(document.querySelector('[data-testid=\"error\"]') && !document.querySelector('[data-testid=\"error\"]').hidden)", 300)
        adapter = b.eval(ADAPTER_JS)
        engine = (b.eval(ENGINE) or "").strip()
        timings = generate_n(b, REPEATS + 1, 300)
        r = b.eval("({ first: window.__studio.firstImageAt, nav: performance.timeOrigin })")
        steps = sorted(t["perStepMs"] for t in timings[1:])
        b.screenshot(out / f"page_{model}.png")
        return {
            "model": model, "size": size, "steps": STEPS, "engine": engine, "adapter": adapter,
            "pageLoadToFirstImageMs": r["nav"] + r["first"] - t0 * 1000,
            "perStepMs": steps[len(steps) // 2], "firstRunPerStepMs": timings[0]["perStepMs"], "timings": timings,
            "error": b.error(), "console": b.console[-10:],
        }
    finally:
        b.close()


def sd15_run(exe, flags, env, url, repo, steps, size, out):
    b = Browser(exe, flags, env)
    res = {"repo": repo, "steps": steps, "size": size}
    try:
        b.goto(f"{url}?hub={url}hub-mirror&model=classroom#p={PROMPT.replace(' ', '%20')}&seed=1234&steps={steps}&g=7.5&sch=ddim&prev=0")
        b.wait(READY, 300)
        res["adapter"] = b.eval(ADAPTER_JS)
        set_field(b, "model-select", "hub:other")
        set_field(b, "hub-repo", repo)
        t0 = time.time()
        click(b, "hub-download")
        name = repo.split("/")[-1]
        b.wait(f"(window.__studio.ready() && /{re.escape(name)}/.test(document.querySelector('[data-testid=\"model-info\"]').textContent)) || !!(document.querySelector('[data-testid=\"error\"]') && !document.querySelector('[data-testid=\"error\"]').hidden && window.__studio.ready())", 900, poll=0.25)
        res["downloadVerifyLoadMs"] = (time.time() - t0) * 1000
        res["loadError"] = b.error()
        res["modelInfo"] = b.eval("document.querySelector('[data-testid=\"model-info\"]').textContent")
        res["engine"] = (b.eval(ENGINE) or "").strip()
        res["loaded"] = b.eval("(({ ms, bytes, wasmBytes }) => ({ ms, bytes, wasmBytes }))(window.__studio.events.filter(e => e.status === 'loaded').pop() || {})")
        b.screenshot(out / "page_sd15_loaded.png")
        if res["loadError"]:
            return res
        sizes = b.eval("[...document.querySelector('[data-testid=\"size\"]').options].map(o => o.value)")
        res["sizeOptions"] = sizes
        if str(size) in sizes:
            set_field(b, "size", size)
        set_field(b, "seed", 1234)
        set_field(b, "steps", steps)
        set_field(b, "guidance", 7.5)
        set_field(b, "scheduler", "ddim")
        set_field(b, "prompt", PROMPT)
        set_field(b, "negative-prompt", "")
        t1 = time.time()
        timings = generate_n(b, 2, 900)
        res["firstGenerateWallMs"] = None if not timings else (time.time() - t1) * 1000
        res["timings"] = timings
        res["perStepMs"] = timings[-1]["perStepMs"]
        res["firstRunPerStepMs"] = timings[0]["perStepMs"]
        px = b.eval("""(() => { const c = document.querySelector('[data-testid="image-original"]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
          let s = ''; const u = d.data; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
          return { w: c.width, h: c.height, b64: btoa(s), backend: c.dataset.backend } })()""", timeout=120)
        (out / "sd15_page.rgba").write_bytes(base64.b64decode(px["b64"]))
        res["image"] = {"width": px["w"], "height": px["h"], "backend": px["backend"]}
        b.screenshot(out / "page_sd15.png")
        res["error"] = b.error()
        res["console"] = b.console[-10:]
        return res
    except Exception as e:  # report what happened so far
        res["exception"] = str(e)[:3000]
        res["stderr"] = b.stderr_tail()[-2000:]
        try:
            b.screenshot(out / "page_sd15_fail.png")
        except Exception:
            pass
        return res
    finally:
        b.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--chromium", required=True)
    p.add_argument("--dist", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--hub-repo", action="append", default=[])
    p.add_argument("--sd15-steps", type=int, default=4)
    p.add_argument("--sd15-size", type=int, default=512)
    p.add_argument("--flags", default="")
    p.add_argument("--require-f16", action="store_true", help="stop after the probe unless an adapter offers shader-f16")
    p.add_argument("--lib", default="", help="LD_LIBRARY_PATH for Chromium (the shared libraries carried with it)")
    p.add_argument("--probe", default="", help="'|'-separated extra flag sets: the first that gives a non-fallback adapter is used")
    p.add_argument("--only", default="adapter,classroom,tiny-sd1,sd15")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    repos = {r.split("=", 1)[0]: Path(r.split("=", 1)[1]) for r in a.hub_repo}
    httpd, url = serve(Path(a.dist), repos)
    flags = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--enable-unsafe-webgpu", *a.flags.split()]
    env = dict(os.environ)
    if a.lib:
        # Chromium's own libraries for Chromium alone: exported to Python too, they crash it.
        env["LD_LIBRARY_PATH"] = a.lib
    result = {"url": url}
    save = lambda: (out / "page_gpu.json").write_text(json.dumps(result, indent=1))
    if a.probe:
        # Which Chromium flags give the page a real (non-fallback) WebGPU adapter here?
        result["probe"] = []
        chosen = chosen_f16 = any_adapter = None
        for extra in a.probe.split("|"):
            f = flags + extra.split()
            b = None
            try:
                b = Browser(a.chromium, f, env)
                b.goto(url + "models/index.json")
                time.sleep(0.5)
                adapter = b.eval(ADAPTER_JS, timeout=20)
            except Exception as e:
                adapter = {"error": str(e)[:1500]}
            tail = b.stderr_tail()[-1500:] if b else ""
            if b:
                b.close()
            result["probe"].append({"flags": extra, "adapter": adapter, "stderr": tail})
            log(f"probe {extra!r}: {adapter}")
            if adapter and not adapter.get("error"):
                if not adapter.get("isFallbackAdapter"):
                    # A hardware adapter; one that offers shader-f16 (the page's f16 path) wins.
                    if adapter.get("shaderF16") and chosen_f16 is None:
                        chosen_f16 = f
                    chosen = chosen or f
                any_adapter = any_adapter or f
        flags = chosen_f16 or chosen or any_adapter or flags + a.probe.split("|")[0].split()
        if a.require_f16 and chosen_f16 is None:
            log("no flag set gave an adapter with shader-f16: stopping (--require-f16)")
            result["flags"] = flags
            save()
            httpd.shutdown()
            return
    result["flags"] = flags
    only = a.only.split(",")
    for model, size in [("classroom", 64), ("tiny-sd1", 16)]:
        if model not in only:
            continue
        log(model)
        try:
            result[model] = bundled_run(a.chromium, flags, env, url, model, size, out)
            r = result[model]
            log(f"{model}: engine={r['engine']!r} adapter={r['adapter']} first image {r['pageLoadToFirstImageMs']:.0f} ms, {r['perStepMs']:.1f} ms/step")
        except Exception as e:
            result[model] = {"exception": str(e)[:3000]}
            log(f"{model} failed: {e}")
        save()
    if "sd15" in only and repos:
        repo = next(iter(repos))
        log(f"sd15: {repo}")
        result["sd15"] = sd15_run(a.chromium, flags, env, url, repo, a.sd15_steps, a.sd15_size, out)
        log("sd15:", json.dumps({k: v for k, v in result["sd15"].items() if k not in ("timings", "stderr")})[:2000])
        save()
    httpd.shutdown()
    save()


if __name__ == "__main__":
    main()
