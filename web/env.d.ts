/** The hub hosts this build's Content-Security-Policy allows (vite.config.ts `define`; web/security-policy.ts). */
declare const __STUDIO_HUB_HOSTS__: string[];
