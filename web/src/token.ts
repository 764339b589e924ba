// The plugNmeet join token: integrations link to `/?access_token=<token>`. The token is a
// secret, so it moves from the address bar into this tab's session storage at once: kept for a
// reload, never sent with requests (a cookie would ride along on every one), gone with the tab.

const KEY = 'pnm_access_token';

function stored(): string | null {
  try {
    return window.sessionStorage.getItem(KEY) || null;
  } catch {
    return null;
  }
}

function store(token: string): void {
  try {
    window.sessionStorage.setItem(KEY, token);
  } catch {
    // Storage refused (private mode, quota): the token lives in memory for this page only.
  }
}

/** Forgets the token: the server refused it (expired or invalid), or the meeting ended. */
export function forgetToken(): void {
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // Nothing was stored.
  }
  // Earlier versions kept it in a cookie.
  document.cookie = `${KEY}=; path=/; max-age=0; SameSite=Strict`;
}

/**
 * The join token: from `?access_token=` (then kept in session storage and removed from the
 * address bar), else from session storage; `null` when there is none.
 */
export function takeToken(): string | null {
  const url = new URL(window.location.href);
  if (url.searchParams.has('access_token')) {
    const fromUrl = url.searchParams.get('access_token')?.trim() ?? '';
    url.searchParams.delete('access_token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    if (fromUrl) {
      store(fromUrl);
      return fromUrl;
    }
  }
  return stored();
}

/** Clock skew allowed between this device and the edge when reading `exp` here. */
const SKEW_SECS = 30;

/**
 * Whether the token's own `exp` claim says it has expired, read without verifying it (the edge
 * verifies). Saves a round trip for an old link; anything unreadable is left to the edge.
 */
export function expiredLocally(token: string, nowSecs = Date.now() / 1000): boolean {
  const payload = token.split('.')[1];
  if (!payload) return false;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, '=')));
    const exp = claims && typeof claims === 'object' ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === 'number' && exp + SKEW_SECS < nowSecs;
  } catch {
    return false;
  }
}
