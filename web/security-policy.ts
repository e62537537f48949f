// The page's Content-Security-Policy and the hub hosts it may contact (issue 18, item 5).
//
// Scripts and wasm come from the page's own origin only ('wasm-unsafe-eval' lets it compile its
// own studio_wasm.wasm; no 'unsafe-inline', no 'unsafe-eval'); it connects to itself and to the
// configured hub hosts, nothing else. vite.config.ts sends the policy as a header from its
// servers (workers get their policy from the header of their own script) and writes it into
// index.html as a <meta> for static hosting (where `frame-ancestors` cannot be set: a <meta>
// ignores it). Build with STUDIO_HUB_HOSTS="https://mirror.example.org,…" to allow more hubs.

/** The Hugging Face hub and the hosts its `resolve/` downloads redirect to (LFS and Xet CDNs). */
export const DEFAULT_HUB_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co'];

/** A host source of CSP: `https://host`, `https://*.suffix`, optional port; nothing else. */
export function isHostSource(s: string): boolean {
  return /^https?:\/\/(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/.test(s);
}

/** The hub hosts of a build: the defaults plus STUDIO_HUB_HOSTS (comma-separated host sources). */
export function hubHosts(extra: string | undefined): string[] {
  const added = (extra ?? '')
    .split(',')
    .map((s) => s.trim().replace(/\/$/, '').toLowerCase())
    .filter(Boolean);
  const bad = added.filter((s) => !isHostSource(s));
  if (bad.length > 0) throw new Error(`STUDIO_HUB_HOSTS: ${bad.join(', ')} is not a host like https://mirror.example.org or https://*.example.org`);
  return [...new Set([...DEFAULT_HUB_HOSTS, ...added])];
}

/** The policy. `meta`: the <meta> form (without the directives a <meta> ignores). */
export function contentSecurityPolicy(hosts: string[], meta = false): string {
  const directives = [
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    `connect-src 'self' ${hosts.join(' ')}`,
    "img-src 'self' data: blob:",
    "style-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
    ...(meta ? [] : ["frame-ancestors 'none'"]),
  ];
  return directives.join('; ');
}

/** Whether `url` is on the page's origin or matches one of `hosts` (CSP host-source matching). */
export function urlAllowed(url: string, hosts: string[], pageOrigin: string): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.origin === pageOrigin) return true;
  return hosts.some((h) => {
    const m = /^(https?):\/\/(\*\.)?([^:/]+)(?::(\d+))?$/.exec(h);
    if (!m) return false;
    const [, scheme, wild, host, port] = m;
    if (u.protocol !== `${scheme}:`) return false;
    if ((port ?? '') !== u.port) return false;
    return wild ? u.hostname.endsWith(`.${host}`) : u.hostname === host;
  });
}
