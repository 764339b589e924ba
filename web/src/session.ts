// The edge's API for the page (same origin): `POST /api/session` trades the join token for the
// room's region and a LiveKit token; `POST /api/endRoom` lets a moderator end the meeting.
// Both take the join token raw in `Authorization`.

export type ErrorKind = 'expired' | 'invalid' | 'not-active' | 'blocked' | 'unreachable';

export interface Session {
  room_id: string;
  room_sid: string;
  room_title: string;
  user_id: string;
  name: string;
  is_admin: boolean;
  is_hidden: boolean;
  /** The track sources LiveKit lets this user publish (`camera`, `microphone`, `screen_share`, …). */
  publish_sources: string[];
  region: { id: string; name: string };
  placement: string;
  livekit_url: string;
  token: string;
}

/** Whether the room lets this user publish `source` (LiveKit refuses what it does not). */
export function mayPublish(session: Session, source: 'camera' | 'microphone' | 'screen_share'): boolean {
  return session.publish_sources.includes(source);
}

export type SessionResult =
  | { ok: true; session: Session }
  | { ok: false; error: ErrorKind; msg?: string };

export type EndResult = { ok: true } | { ok: false; msg: string };

const REQUEST_TIMEOUT_MS = 15_000;

const MESSAGES: Record<string, ErrorKind> = {
  'notifications.token-expired': 'expired',
  'notifications.invalid-token': 'invalid',
  'notifications.auth-header-missing': 'invalid',
  'notifications.room-not-active': 'not-active',
  'notifications.user-blocked': 'blocked',
  'notifications.no-media-region-available': 'unreachable',
};

interface Reply {
  status: number;
  body: Record<string, unknown> | null;
}

/** POSTs `{}` with the join token; `null` on a network failure or timeout. */
async function post(path: string, joinToken: string): Promise<Reply | null> {
  const abort = new AbortController();
  const timer = window.setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const res = await fetch(path, {
      method: 'POST',
      headers: { Authorization: joinToken, 'Content-Type': 'application/json' },
      body: '{}',
      cache: 'no-store',
      credentials: 'same-origin',
      signal: abort.signal,
    });
    let body: Record<string, unknown> | null = null;
    try {
      const parsed: unknown = await res.json();
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      body = null;
    }
    return { status: res.status, body };
  } catch {
    return null;
  } finally {
    window.clearTimeout(timer);
  }
}

function isSession(v: Record<string, unknown>): boolean {
  const region = v.region as Record<string, unknown> | null | undefined;
  return (
    typeof v.livekit_url === 'string' &&
    v.livekit_url !== '' &&
    typeof v.token === 'string' &&
    v.token !== '' &&
    typeof v.room_id === 'string' &&
    !!region &&
    typeof region === 'object'
  );
}

/** What a failed reply means for the user. */
export function classify(status: number, msg: string | undefined): ErrorKind {
  if (msg && MESSAGES[msg]) return MESSAGES[msg];
  if (status === 0 || status >= 500 || status === 408 || status === 429) return 'unreachable';
  return 'invalid';
}

export async function createSession(joinToken: string): Promise<SessionResult> {
  const reply = await post('/api/session', joinToken);
  if (!reply) return { ok: false, error: 'unreachable' };
  const body = reply.body;
  if (reply.status === 200 && body && isSession(body)) {
    const s = body as unknown as Session;
    return {
      ok: true,
      session: {
        ...s,
        room_title: s.room_title || s.room_id,
        name: s.name || s.user_id || 'Guest',
        is_admin: s.is_admin === true,
        is_hidden: s.is_hidden === true,
      },
    };
  }
  const msg = typeof body?.msg === 'string' ? body.msg : undefined;
  if (reply.status === 200) return { ok: false, error: 'unreachable', msg };
  return { ok: false, error: classify(reply.status, msg), msg };
}

export async function endRoom(joinToken: string): Promise<EndResult> {
  const reply = await post('/api/endRoom', joinToken);
  if (!reply) return { ok: false, msg: 'network-error' };
  if (reply.status === 200 && reply.body?.status === true) return { ok: true };
  const msg = typeof reply.body?.msg === 'string' ? reply.body.msg : `HTTP ${reply.status}`;
  return { ok: false, msg };
}
