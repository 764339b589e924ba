// Small DOM helpers: an element builder, the screen switcher behind `#app[data-screen]`, and
// the polite live region.

export type Screen = 'loading' | 'error' | 'waiting' | 'prejoin' | 'connecting' | 'room' | 'ended' | 'left' | 'removed';

type AttrValue = string | number | boolean | null | undefined;
type Child = Node | string | null | undefined | false;

/**
 * Creates an element. Attributes: `on<event>` keys take a
 * listener; `true` sets an empty attribute, `false`/`null`/`undefined` skip it.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, AttrValue | EventListener> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Inline SVG icon (static markup only; CSP-safe). */
export function icon(paths: string): SVGSVGElement {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.innerHTML = paths;
  return svg;
}

export const ICONS = {
  mic: '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5.9-3h-1.7a4.2 4.2 0 0 1-8.4 0H6.1a5.9 5.9 0 0 0 5 5.8V20h1.8v-3.2a5.9 5.9 0 0 0 5-5.8z"/>',
  micOff:
    '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5.9-3h-1.7a4.2 4.2 0 0 1-8.4 0H6.1a5.9 5.9 0 0 0 5 5.8V20h1.8v-3.2a5.9 5.9 0 0 0 5-5.8z"/><path d="M4 3 21 20" class="slash"/>',
  cam: '<path d="M15 7H4a1 1 0 0 0-1 1v8a1 1 0 0 0 1 1h11a1 1 0 0 0 1-1v-2.5l5 3.5V6l-5 3.5V8a1 1 0 0 0-1-1z"/>',
  camOff:
    '<path d="M15 7H4a1 1 0 0 0-1 1v8a1 1 0 0 0 1 1h11a1 1 0 0 0 1-1v-2.5l5 3.5V6l-5 3.5V8a1 1 0 0 0-1-1z"/><path d="M3 3 21 21" class="slash"/>',
  screen:
    '<path d="M20 4H4a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2h6v2H8v2h8v-2h-2v-2h6a2 2 0 0 0 2-2V6a2 2 0 0 0-2-2zm0 12H4V6h16v10z"/>',
  leave:
    '<path d="M10 17v-3H3v-4h7V7l5 5-5 5zm2-14h7a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2h-7v-2h7V5h-7V3z"/>',
  live: '<path d="M12 10a2 2 0 1 0 0 4 2 2 0 0 0 0-4zM7.8 7.8l-1.4-1.4a7.9 7.9 0 0 0 0 11.2l1.4-1.4a6 6 0 0 1 0-8.4zm8.4 0a6 6 0 0 1 0 8.4l1.4 1.4a7.9 7.9 0 0 0 0-11.2l-1.4 1.4z"/>',
  rec: '<circle cx="12" cy="12" r="6"/><path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 18a8 8 0 1 1 0-16 8 8 0 0 1 0 16z"/>',
  hand: '<path d="M12 2a1.5 1.5 0 0 1 1.5 1.5V11h1V4.5a1.5 1.5 0 0 1 3 0V12h1V7.5a1.5 1.5 0 0 1 3 0V15a7 7 0 0 1-7 7h-1a7 7 0 0 1-6.1-3.6L3.2 13a1.5 1.5 0 0 1 2.6-1.5L8 14V4.5a1.5 1.5 0 0 1 3 0V11h.5V3.5A1.5 1.5 0 0 1 12 2z"/>',
  chat: '<path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/>',
  people:
    '<path d="M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm0 2c-3.3 0-7 1.7-7 4v2h14v-2c0-2.3-3.7-4-7-4zm7.5-2a3.5 3.5 0 1 0-1.2-6.8 6 6 0 0 1 0 6.6c.4.1.8.2 1.2.2zm1.6 2.1c1.4.9 1.9 2.2 1.9 3.9v2h3v-2c0-1.9-2.4-3.4-4.9-3.9z"/>',
  end: '<path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm5 13.6L15.6 17 12 13.4 8.4 17 7 15.6 10.6 12 7 8.4 8.4 7 12 10.6 15.6 7 17 8.4 13.4 12l3.6 3.6z"/>',
};

export function appRoot(): HTMLElement {
  const app = document.getElementById('app');
  if (!app) throw new Error('#app missing');
  return app;
}

/**
 * Replaces what `#app` shows, marks it with `data-screen` (and `data-error`), and moves focus
 * to the new screen's heading so keyboard and screen-reader users start from the top.
 */
export function showScreen(screen: Screen, content: Node[], error?: string): HTMLElement {
  const app = appRoot();
  app.replaceChildren(...content);
  app.dataset.screen = screen;
  if (error) app.dataset.error = error;
  else delete app.dataset.error;
  app.setAttribute('aria-busy', screen === 'loading' || screen === 'connecting' ? 'true' : 'false');
  const heading = app.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  return app;
}

let announceTimer = 0;

/** Says `text` through the page's polite live region. */
export function announce(text: string): void {
  const region = document.getElementById('announcer');
  if (!region) return;
  // Clear first so the same sentence twice is announced twice.
  region.textContent = '';
  window.clearTimeout(announceTimer);
  announceTimer = window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Up to two initials of a display name. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
  const result = letters.map((w) => Array.from(w)[0] ?? '').join('').toUpperCase();
  return result || '?';
}

/** A meeting control: an icon over a short text, with `label` for assistive technology. */
export function controlButton(id: string, label: string, text: string, iconPaths: string, extra = ''): HTMLButtonElement {
  return h(
    'button',
    { id, type: 'button', class: `ctl ${extra}`.trim(), 'aria-label': label },
    h('span', { class: 'ctl-icon' }, icon(iconPaths)),
    h('span', { class: 'ctl-text' }, text),
  );
}

/** Shows a toggle control as on or off (and, if given, with another icon). */
export function setPressed(button: HTMLButtonElement, pressed: boolean, iconPaths?: string): void {
  button.setAttribute('aria-pressed', String(pressed));
  if (iconPaths) button.querySelector('.ctl-icon')?.replaceChildren(icon(iconPaths));
}
