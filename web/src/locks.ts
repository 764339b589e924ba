// Locks on what people may publish. LiveKit holds each participant's rights and tells every
// page when a moderator changes them, so a page reads a lock from the participant's permission;
// a moderator changes locks through the edge (`/api/updateLockSettings`), for one participant
// or, with the Everyone switches here, for all but the moderators and whoever comes later.

import { Track, type Participant } from 'livekit-client';

import { h } from './dom';
import { updateLock, type LockResult, type LockService } from './session';

/** What a participant's LiveKit metadata (plugNmeet's `UserMetadata`, which the edge keeps up
 * to date) says of them: moderator or not, their hand, and a moderator's locks on them
 * (`lock_microphone`, `lock_webcam`, …). */
export function userMetadataOf(p: Participant): {
  isModerator: boolean;
  handRaised: boolean;
  locks: Record<string, boolean>;
} {
  try {
    const meta = JSON.parse(p.metadata ?? '') as {
      is_admin?: unknown;
      raised_hand?: unknown;
      lock_settings?: unknown;
    } | null;
    const locks = meta?.lock_settings;
    return {
      isModerator: meta?.is_admin === true,
      handRaised: meta?.raised_hand === true,
      locks: locks && typeof locks === 'object' ? (locks as Record<string, boolean>) : {},
    };
  } catch {
    return { isModerator: false, handRaised: false, locks: {} };
  }
}

/** Whether LiveKit lets `p` publish `source` now: nothing without `canPublish`, and any source
 * when it lists none. */
export function mayPublishNow(p: Participant, source: Track.Source): boolean {
  const permission = p.permissions;
  if (!permission) return true;
  if (!permission.canPublish) return false;
  const listed = permission.canPublishSources;
  return listed.length === 0 || listed.includes(Track.sourceToProto(source));
}

/** The Everyone switches: which media locks are on for the room, as `room_locks` said at join
 * and this page's changes since. */
const SWITCHES: { service: LockService; field: string; label: string; on: string; off: string }[] = [
  {
    service: 'mic',
    field: 'lock_microphone',
    label: 'Lock microphones',
    on: 'Microphones are locked for everyone else.',
    off: 'Microphones are unlocked.',
  },
  {
    service: 'webcam',
    field: 'lock_webcam',
    label: 'Lock cameras',
    on: 'Cameras are locked for everyone else.',
    off: 'Cameras are unlocked.',
  },
  {
    service: 'screenShare',
    field: 'lock_screen_sharing',
    label: 'Lock screen sharing',
    on: 'Screen sharing is locked for everyone else.',
    off: 'Screen sharing is unlocked.',
  },
  {
    service: 'chat',
    field: 'lock_chat',
    label: 'Lock chat',
    on: 'Chat is locked for everyone else.',
    off: 'Chat is unlocked.',
  },
];

/** Rounds of a lock for everyone: each reaches at most 24 participants (the edge's limit). */
const MAX_ROUNDS = 10;

export class EveryoneLocks {
  readonly el = h('fieldset', { id: 'people-locks', class: 'people-locks' }, h('legend', {}, 'Everyone else'));

  /** `report`: shows why a change failed (the message key), or clears it with `null`. */
  constructor(
    private readonly joinToken: () => string,
    roomLocks: Record<string, boolean>,
    private readonly report: (msg: string | null) => void,
    private readonly say: (text: string) => void,
  ) {
    for (const lock of SWITCHES) {
      const box = h('input', { type: 'checkbox', 'data-service': lock.service });
      box.checked = roomLocks[lock.field] === true;
      box.addEventListener('change', () => void this.change(box, lock));
      this.el.append(h('label', {}, box, ` ${lock.label}`));
    }
  }

  private async change(box: HTMLInputElement, lock: (typeof SWITCHES)[number]): Promise<void> {
    const locked = box.checked;
    box.disabled = true;
    this.report(null);
    const result = await lockAll(this.joinToken, lock.service, locked);
    box.disabled = false;
    if (!result.ok && result.msg === 'notifications.media-server-unreachable') {
      // The edge keeps the lock, and gives it to those in the meeting once LiveKit answers.
      this.say(`${locked ? lock.on : lock.off} It reaches those in the meeting shortly.`);
      return;
    }
    if (!result.ok) {
      box.checked = !locked;
      this.report(result.msg);
      return;
    }
    const later = result.left > 0 ? ' A few more get it in a moment.' : '';
    this.say(`${locked ? lock.on : lock.off}${later}`);
  }
}

/** Locks `service` for everyone, round after round until every participant in the meeting has
 * it (or the rounds run out: then the last result, with what is `left`). */
async function lockAll(joinToken: () => string, service: LockService, locked: boolean): Promise<LockResult> {
  let result: LockResult = { ok: false, msg: 'network-error' };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    result = await updateLock(joinToken(), 'all', service, locked);
    if (!result.ok || result.left === 0) break;
  }
  return result;
}
