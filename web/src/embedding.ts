// The page inside another site's page. plugNmeet's CMS plugins (Moodle, WordPress, Joomla) ask
// the edge for its client files (`/auth/getClientFiles`), load them into a page of their own
// that has `<div id="plugNmeet-app">` and `window.plugNmeetConfig = { serverUrl, … }` (older
// ones set `window.PLUG_N_MEET_SERVER_URL`), and send users to that page with `?access_token=`.
// There the page mounts itself into that element, calls the edge at the server URL (the edge
// lets any origin call `/api/*`: the join token in `Authorization` is the only credential), and
// leaves the address bar to the host site, which may need the token in it on a reload (Moodle
// does).

/** The element plugNmeet's plugins give the client. */
const HOST_ELEMENT_ID = 'plugNmeet-app';

let embedded = false;

/**
 * Mounts the page into the host site's `#plugNmeet-app` when this is not the edge's own page
 * (which has `#app`): adds the page's root (`#app`) and its live region there. Call once,
 * before anything is shown.
 */
export function mountInHostPage(): void {
  if (document.getElementById('app')) return;
  const host = document.getElementById(HOST_ELEMENT_ID);
  if (!host) return;
  embedded = true;
  const app = document.createElement('main');
  app.id = 'app';
  app.dataset.screen = 'loading';
  app.setAttribute('aria-busy', 'true');
  const announcer = document.createElement('div');
  announcer.id = 'announcer';
  announcer.className = 'visually-hidden';
  announcer.setAttribute('aria-live', 'polite');
  announcer.setAttribute('aria-atomic', 'true');
  host.replaceChildren(app, announcer);
}

/** Whether the page runs inside another site's page (see [`mountInHostPage`]). */
export function isEmbedded(): boolean {
  return embedded;
}

/** An http(s) URL without its trailing slashes, or `null`. */
function serverUrl(value: unknown): string | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  try {
    const url = new URL(value.trim());
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
    return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  } catch {
    return null;
  }
}

interface HostConfig {
  plugNmeetConfig?: { serverUrl?: unknown };
  PLUG_N_MEET_SERVER_URL?: unknown;
}

/**
 * Where the edge's API is: the same origin on the edge's own page; inside a host page, the
 * server URL the plugin configured, else the origin this script came from (the edge serves it).
 */
export function apiBase(): string {
  if (!embedded) return '';
  const config = window as unknown as HostConfig;
  return (
    serverUrl(config.plugNmeetConfig?.serverUrl) ??
    serverUrl(config.PLUG_N_MEET_SERVER_URL) ??
    new URL(import.meta.url).origin
  );
}
