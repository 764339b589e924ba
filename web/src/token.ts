// The plugNmeet join token: integrations link to `/?access_token=<token>`. The token is a
// secret, so on the edge's own page it moves from the address bar into this tab's session
// storage at once: kept for a reload, never sent with requests (a cookie would ride along on
// every one), gone with the tab. Inside a CMS plugin's page the address bar is the host site's
// (see embedding.ts), so the token stays there too.

const KEY = 'pnm_access_token';
/** Inside a host page: the link's token the kept one descends from (by renewals). */
const LINK_KEY = 'pnm_access_token_link';

/** The token in use: the one taken at load, or its latest renewal. */
let current: string | null = null;

function read(key: string): string | null {
  try {
    return window.sessionStorage.getItem(key) || null;
  } catch {
    return null;
  }
}

function write(key: string, value: string): void {
  try {
    window.sessionStorage.setItem(key, value);
  } catch {
    // Storage refused (private mode, quota): the token lives in memory for this page only.
  }
}

/** Forgets the token: the server refused it (expired or invalid), or the meeting ended. */
export function forgetToken(): void {
  current = null;
  try {
    window.sessionStorage.removeItem(KEY);
    window.sessionStorage.removeItem(LINK_KEY);
  } catch {
    // Nothing was stored.
  }
  // Earlier versions kept it in a cookie.
  document.cookie = `${KEY}=; path=/; max-age=0; SameSite=Strict`;
}

/**
 * The join token: from `?access_token=` (then kept in session storage and, on the edge's own
 * page, removed from the address bar), else from session storage; `null` when there is none.
 * Inside a host page (`embedded`) the link stays in the address bar, and a renewal of that same
 * link kept in this tab wins over it on a reload (the link's own token may have expired).
 */
export function takeToken(embedded: boolean): string | null {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('access_token')?.trim() ?? '';
  if (embedded) {
    // The host page always links with a token: nothing kept from another link is used.
    if (!fromUrl) return (current = null);
    if (read(LINK_KEY) !== fromUrl) {
      write(KEY, fromUrl);
      write(LINK_KEY, fromUrl);
    }
    current = read(KEY) ?? fromUrl;
    return current;
  }
  if (url.searchParams.has('access_token')) {
    url.searchParams.delete('access_token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    if (fromUrl) {
      write(KEY, fromUrl);
      current = fromUrl;
      return fromUrl;
    }
  }
  current = read(KEY);
  return current;
}

/** The join token in use now (empty once forgotten): calls read it each time, so a renewal
 * made meanwhile counts. */
export function currentToken(): string {
  return current ?? '';
}

/** Keeps a renewed token, for this page and a reload. */
export function keepToken(token: string): void {
  current = token;
  write(KEY, token);
}

/** Clock skew allowed between this device and the edge when reading `exp` here. */
const SKEW_SECS = 30;

/**
 * Whether the token's own `exp` claim says it has expired, read without verifying it (the edge
 * verifies). Saves a round trip for an old link; anything unreadable is left to the edge.
 */
export function expiredLocally(token: string, nowSecs = Date.now() / 1000): boolean {
  const { exp } = times(token);
  return exp !== undefined && exp + SKEW_SECS < nowSecs;
}

/**
 * How long the token lives, by its own `nbf` and `exp` (a difference of the edge's clock, so
 * this device's clock does not matter); `null` when it does not say.
 */
export function lifetimeSecs(token: string): number | null {
  const { nbf, exp } = times(token);
  return nbf !== undefined && exp !== undefined && exp > nbf ? exp - nbf : null;
}

/** The token's `nbf` and `exp` claims, read without verifying them (the edge verifies). */
function times(token: string): { nbf?: number; exp?: number } {
  const payload = token.split('.')[1];
  if (!payload) return {};
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '=')));
    if (!claims || typeof claims !== 'object') return {};
    const { nbf, exp } = claims as { nbf?: unknown; exp?: unknown };
    return {
      nbf: typeof nbf === 'number' ? nbf : undefined,
      exp: typeof exp === 'number' ? exp : undefined,
    };
  } catch {
    return {};
  }
}
