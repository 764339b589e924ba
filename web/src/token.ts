// The plugNmeet join token: integrations link to `/?access_token=<token>`. The token is a
// secret, so it moves from the address bar into a first-party cookie at once.

const COOKIE = 'pnm_access_token';
const MAX_AGE_SECS = 3 * 60 * 60;

function cookieAttributes(maxAge: number): string {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  return `; path=/; max-age=${maxAge}; SameSite=Strict${secure}`;
}

function readCookie(): string | null {
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== COOKIE) continue;
    const raw = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(raw) || null;
    } catch {
      return raw || null;
    }
  }
  return null;
}

function storeCookie(token: string): void {
  document.cookie = `${COOKIE}=${encodeURIComponent(token)}${cookieAttributes(MAX_AGE_SECS)}`;
}

/** Forgets a token the server refused (expired or invalid). */
export function forgetToken(): void {
  document.cookie = `${COOKIE}=${cookieAttributes(0)}`;
}

/**
 * The join token: from `?access_token=` (then kept in the cookie and removed from the address
 * bar), else from the cookie; `null` when there is none.
 */
export function takeToken(): string | null {
  const url = new URL(window.location.href);
  if (url.searchParams.has('access_token')) {
    const fromUrl = url.searchParams.get('access_token')?.trim() ?? '';
    url.searchParams.delete('access_token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    if (fromUrl) {
      storeCookie(fromUrl);
      return fromUrl;
    }
  }
  return readCookie();
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
