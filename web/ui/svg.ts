// SVG elements for the page's charts (the anatomy's bars, the sweep's curves).

const NS = 'http://www.w3.org/2000/svg';

/** An SVG element with its attributes and, optionally, its text. */
export function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
