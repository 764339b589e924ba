// The edge's API for the page (same origin; inside a CMS plugin's page, the edge's URL, see
// embedding.ts): `POST /api/session` trades the join token for the room's region and a LiveKit
// token (or says the user waits for a moderator); `POST /api/endRoom` lets a moderator end the
// meeting, `/api/removeParticipant` and `/api/muteUnmuteTrack` keep order in it;
// `/api/waitingRoom/*` lets a moderator see who waits and let them in or turn them away. All
// take the join token raw in `Authorization`.

import { apiBase } from './embedding';

export type ErrorKind = 'expired' | 'invalid' | 'not-active' | 'blocked' | 'unreachable' | 'unsupported';

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
  /** The room has a waiting room (a moderator's page lists who waits). */
  waiting_room: boolean;
  /** The room has a chat. */
  chat: boolean;
  /** This user may write in it now (a moderator may lock it during the meeting). */
  may_chat: boolean;
  /** For a moderator: the room's locks on others (`lock_microphone`, `lock_webcam`, …). */
  room_locks?: Record<string, boolean>;
  /** For a moderator in a room with a waiting room: what waiting users read. */
  waiting_room_msg?: string;
  /** The room's end-to-end encryption key, in an encrypted room. */
  e2ee_key?: string;
  region: { id: string; name: string };
  placement: string;
  livekit_url: string;
  token: string;
}

/** Whether the room lets this user publish `source` (LiveKit refuses what it does not). */
export function mayPublish(session: Session, source: 'camera' | 'microphone' | 'screen_share'): boolean {
  return session.publish_sources.includes(source);
}

/** A user the edge keeps in the waiting room: no LiveKit token until a moderator lets them in. */
export interface Waiting {
  room_title: string;
  name: string;
  /** The room creator's words for waiting users (may be empty). */
  message: string;
}

/** A user in the waiting room, as a moderator's page lists them. */
export interface WaitingUser {
  user_id: string;
  name: string;
}

/** Who waits, longest first (the edge lists at most 200), and how many wait in all. */
export interface WaitingUsers {
  users: WaitingUser[];
  total: number;
}

export type SessionResult =
  | { ok: true; session: Session }
  | { ok: 'waiting'; waiting: Waiting }
  | { ok: false; error: ErrorKind; msg?: string };

/** How a moderator's action (ending the meeting, a waiting-room decision) went. */
export type ActionResult = { ok: true } | { ok: false; msg: string };

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

/** POSTs `payload` (JSON) with the join token; `null` on a network failure or timeout. */
async function post(path: string, joinToken: string, payload: object = {}): Promise<Reply | null> {
  const abort = new AbortController();
  const timer = window.setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
  try {
    const res = await fetch(apiBase() + path, {
      method: 'POST',
      headers: { Authorization: joinToken, 'Content-Type': 'application/json' },
      body: JSON.stringify(payload),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
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
  if (reply.status === 200 && body?.status === true && body.waiting === true) {
    return {
      ok: 'waiting',
      waiting: {
        room_title: typeof body.room_title === 'string' && body.room_title ? body.room_title : '',
        name: typeof body.name === 'string' ? body.name : '',
        message: typeof body.waiting_room_msg === 'string' ? body.waiting_room_msg : '',
      },
    };
  }
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
        waiting_room: s.waiting_room === true,
      },
    };
  }
  const msg = typeof body?.msg === 'string' ? body.msg : undefined;
  if (reply.status === 200) return { ok: false, error: 'unreachable', msg };
  return { ok: false, error: classify(reply.status, msg), msg };
}

/** POSTs a moderator's action; its failure as the edge's `msg` (or the HTTP status). */
async function act(path: string, joinToken: string, payload: object = {}): Promise<ActionResult> {
  const reply = await post(path, joinToken, payload);
  if (!reply) return { ok: false, msg: 'network-error' };
  if (reply.status === 200 && reply.body?.status === true) return { ok: true };
  const msg = typeof reply.body?.msg === 'string' ? reply.body.msg : `HTTP ${reply.status}`;
  return { ok: false, msg };
}

export function endRoom(joinToken: string): Promise<ActionResult> {
  return act('/api/endRoom', joinToken);
}

/** What a moderator asks of the room's recording or RTMP broadcast. */
export type RecordingTask = 'START_RECORDING' | 'STOP_RECORDING' | 'START_RTMP' | 'STOP_RTMP';

/** A moderator starts or stops the room's recording or broadcast (to `rtmpUrl`); the edge
 * sends it to a recorder node. */
export function recording(joinToken: string, task: RecordingTask, rtmpUrl?: string): Promise<ActionResult> {
  return act('/api/recording', joinToken, rtmpUrl ? { task, rtmp_url: rtmpUrl } : { task });
}

/** Who waits to be let in now, longest first, and how many; `unknown` when the edge could not say (try
 * again), `refused` when it will not say to this user (no longer a moderator, token refused). */
export async function waitingUsers(joinToken: string): Promise<WaitingUsers | 'unknown' | 'refused'> {
  const reply = await post('/api/waitingRoom/users', joinToken);
  if (!reply) return 'unknown';
  if (reply.status === 401 || reply.status === 403) return 'refused';
  if (reply.status !== 200 || reply.body?.status !== true) return 'unknown';
  const listed = reply.body.users;
  if (!Array.isArray(listed)) return 'unknown';
  const users = listed
    .filter((u): u is Record<string, unknown> => !!u && typeof u === 'object')
    .filter((u) => typeof u.user_id === 'string')
    .map((u) => ({ user_id: u.user_id as string, name: typeof u.name === 'string' && u.name ? u.name : (u.user_id as string) }));
  const total = typeof reply.body.total === 'number' ? Math.max(reply.body.total, users.length) : users.length;
  return { users, total };
}

/** A moderator lets a waiting user in (`all`: everyone waiting) or turns them away. */
export function decideWaiting(
  joinToken: string,
  decision: 'approve' | 'reject',
  userId: string,
): Promise<ActionResult> {
  const path = decision === 'approve' ? '/api/waitingRoom/approveUsers' : '/api/waitingRoom/rejectUsers';
  return act(path, joinToken, { user_id: userId });
}

/** Raises or lowers the user's own hand, or (a moderator, `userId` given) lowers another's. */
export function raiseHand(joinToken: string, raised: boolean, userId?: string): Promise<ActionResult> {
  return act('/api/raiseHand', joinToken, userId ? { raised, user_id: userId } : { raised });
}

/** A moderator changes what users in the waiting room read (`''` clears it). */
export function updateWaitingMessage(joinToken: string, msg: string): Promise<ActionResult> {
  return act('/api/waitingRoom/updateMsg', joinToken, { msg });
}

/** A moderator removes a participant from the meeting; with `block`, also keeps them out of it. */
export function removeParticipant(joinToken: string, userId: string, block: boolean): Promise<ActionResult> {
  return act('/api/removeParticipant', joinToken, { user_id: userId, block_user: block });
}

export type MuteResult = { ok: true; muted: number; left: number } | { ok: false; msg: string };

/** A moderator mutes a participant's microphone track `trackSid`. Only its owner can turn it
 * back on. */
export function muteMicrophone(joinToken: string, userId: string, trackSid: string): Promise<MuteResult> {
  return mute(joinToken, { user_id: userId, track_sid: trackSid, muted: true });
}

/** A moderator mutes every microphone but their own (`left`: how many one call did not reach). */
export function muteEveryone(joinToken: string): Promise<MuteResult> {
  return mute(joinToken, { user_id: 'all', muted: true });
}

async function mute(joinToken: string, payload: object): Promise<MuteResult> {
  const result = await countingCall('/api/muteUnmuteTrack', joinToken, payload);
  return result.ok ? { ok: true, muted: result.count('muted'), left: result.count('left') } : result;
}

type CountingResult = { ok: true; count: (key: string) => number } | { ok: false; msg: string };

/** A moderator's call whose success answers with counts (how many it changed, how many are
 * left), read with `count`; or why it failed. */
async function countingCall(path: string, joinToken: string, payload: object): Promise<CountingResult> {
  const reply = await post(path, joinToken, payload);
  if (!reply) return { ok: false, msg: 'network-error' };
  const body = reply.body;
  if (reply.status === 200 && body?.status === true) {
    return { ok: true, count: (key) => (typeof body[key] === 'number' && (body[key] as number) >= 0 ? (body[key] as number) : 0) };
  }
  return { ok: false, msg: typeof body?.msg === 'string' ? body.msg : `HTTP ${reply.status}` };
}

/** What a moderator can lock from the page, by plugNmeet's service names. */
export type LockService = 'mic' | 'webcam' | 'screenShare' | 'chat';

export type LockResult = { ok: true; updated: number; left: number } | { ok: false; msg: string };

/** A moderator locks (or unlocks) `service` for one participant, or for everyone (`all`, which
 * also binds whoever joins later); `left`: participants one call did not reach. */
export async function updateLock(
  joinToken: string,
  userId: string,
  service: LockService,
  locked: boolean,
): Promise<LockResult> {
  const payload = { user_id: userId, service, direction: locked ? 'lock' : 'unlock' };
  const result = await countingCall('/api/updateLockSettings', joinToken, payload);
  return result.ok ? { ok: true, updated: result.count('updated'), left: result.count('left') } : result;
}

export type RenewResult = { ok: true; token: string } | { ok: false; retry: boolean };

/** Trades a valid join token for a fresh one; `retry` when the edge could not be asked. */
export async function renewToken(joinToken: string): Promise<RenewResult> {
  const reply = await post('/api/renewToken', joinToken);
  if (!reply) return { ok: false, retry: true };
  const token = reply.body?.token;
  if (reply.status === 200 && reply.body?.status === true && typeof token === 'string' && token) {
    return { ok: true, token };
  }
  return { ok: false, retry: reply.status >= 500 || reply.status === 429 };
}
