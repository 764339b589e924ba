// A moderator's list of the people in the meeting, opened from the People control: each with
// whether their microphone is on, Mute (only its owner can turn it back on), locks on their
// microphone and camera, and Remove, which asks first and can keep them out of this meeting for
// good; and Mute everyone, and the Everyone locks. Rows are kept by identity, so an update
// never takes a button away from under the pointer or the focus.

import { Track, type RemoteParticipant } from 'livekit-client';

import { ICONS, announce, controlButton, h, icon } from './dom';
import { EveryoneLocks, userMetadataOf } from './locks';
import {
  muteEveryone,
  muteMicrophone,
  raiseHand,
  removeParticipant,
  updateLock,
  type ActionResult,
  type LockResult,
  type LockService,
  type MuteResult,
} from './session';

/** The busy key of Mute everyone (identities are never empty). */
const EVERYONE = '';

interface Row {
  el: HTMLLIElement;
  /** The microphone track to mute, while it is on. */
  micSid?: string;
  name: HTMLSpanElement;
  mic: HTMLSpanElement;
  mute: HTMLButtonElement;
  hand: HTMLSpanElement;
  lowerHand: HTMLButtonElement;
  lockMic: HTMLButtonElement;
  lockCam: HTMLButtonElement;
  lockChat: HTMLButtonElement;
  remove: HTMLButtonElement;
  confirm: HTMLDivElement;
  prompt: HTMLParagraphElement;
  block: HTMLInputElement;
}

export class PeopleList {
  readonly el = h('section', { id: 'people', class: 'people', 'aria-labelledby': 'people-title', hidden: true });
  readonly button = controlButton('toggle-people', 'Show people', 'People', ICONS.people, 'ctl-people');
  private readonly title = h('h2', { id: 'people-title' }, 'People');
  private readonly empty = h('p', { class: 'people-empty' }, 'Nobody else is here yet.');
  private readonly list = h('ul', {});
  private readonly error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
  private readonly muteAll = h('button', { id: 'people-mute-all', type: 'button' }, 'Mute everyone');
  private readonly rows = new Map<string, Row>();
  /** Calls on their way, by identity ([`EVERYONE`] for Mute everyone): their buttons stay
   * disabled. */
  private readonly busy = new Set<string>();
  private stopped = false;

  /** `joinToken`: the join token in use now; `say`: a short message on the meeting screen;
   * `roomLocks`: the room's locks on others when this page joined; `extra`: more of a
   * moderator's controls to show at the panel's end (the waiting room's message). */
  constructor(
    private readonly joinToken: () => string,
    private readonly say: (text: string) => void,
    roomLocks: Record<string, boolean>,
    extra?: HTMLElement,
  ) {
    this.button.setAttribute('aria-expanded', 'false');
    this.button.setAttribute('aria-controls', 'people');
    this.button.setAttribute('aria-label', 'People');
    this.button.addEventListener('click', () => this.toggle());
    this.muteAll.addEventListener('click', () => void this.muteEveryone());
    const locks = new EveryoneLocks(joinToken, roomLocks, (msg) => this.showError(msg), say);
    this.el.append(
      this.title,
      this.empty,
      this.list,
      this.error,
      h('div', { class: 'actions' }, this.muteAll),
      locks.el,
    );
    if (extra) this.el.append(extra);
    this.renderCount();
  }

  /** Adds or updates `p`'s row (hidden participants, such as a recorder, are not listed). */
  sync(p: RemoteParticipant): void {
    if (this.stopped) return;
    if (p.permissions?.hidden) {
      this.remove(p.identity);
      return;
    }
    let row = this.rows.get(p.identity);
    // Removed: it shows no actions until LiveKit says they left.
    if (row?.el.dataset.removed) return;
    if (!row) {
      row = this.row(p.identity);
      this.rows.set(p.identity, row);
      this.list.append(row.el);
      this.renderCount();
    }
    const name = p.name || p.identity;
    if (row.name.textContent !== name) {
      row.name.textContent = name;
      row.el.querySelectorAll('.who').forEach((el) => (el.textContent = ` ${name}`));
      row.prompt.textContent = `Remove ${name} from the meeting?`;
    }
    const mic = p.getTrackPublication(Track.Source.Microphone);
    const open = !!mic && !mic.isMuted;
    row.micSid = open ? mic.trackSid : undefined;
    // Their locks, not their rights: a room without cameras is no lock to lift.
    const { isModerator, handRaised, locks } = userMetadataOf(p);
    row.hand.hidden = !handRaised;
    row.el.dataset.hand = handRaised ? 'raised' : 'down';
    if (!handRaised && document.activeElement === row.lowerHand) row.remove.focus();
    row.lowerHand.hidden = !handRaised;
    // Moderators are not locked, whatever their metadata kept from before.
    const micLocked = !isModerator && locks.lock_microphone === true;
    const camLocked = !isModerator && locks.lock_webcam === true;
    const chatLocked = !isModerator && locks.lock_chat === true;
    row.mic.textContent = micLocked ? 'Microphone locked' : open ? 'Microphone on' : 'Microphone off';
    row.el.dataset.microphone = open ? 'on' : 'off';
    row.el.dataset.micLocked = String(micLocked);
    row.el.dataset.cameraLocked = String(camLocked);
    row.el.dataset.chatLocked = String(chatLocked);
    setWords(row.lockMic, micLocked ? 'Unlock mic' : 'Lock mic');
    setWords(row.lockCam, camLocked ? 'Unlock camera' : 'Lock camera');
    setWords(row.lockChat, chatLocked ? 'Unlock chat' : 'Lock chat');
    // Moderators are not locked.
    row.lockMic.hidden = isModerator;
    row.lockCam.hidden = isModerator;
    row.lockChat.hidden = isModerator;
    // The focus does not vanish with a Mute button that goes away.
    if (!open && document.activeElement === row.mute) row.remove.focus();
    row.mute.hidden = !open;
    this.setBusy(p.identity);
  }

  /** Takes `identity`'s row away (they left). */
  remove(identity: string): void {
    const row = this.rows.get(identity);
    if (!row) return;
    row.el.remove();
    this.rows.delete(identity);
    this.renderCount();
  }

  stop(): void {
    this.stopped = true;
  }

  private toggle(): void {
    const open = this.el.hidden;
    this.el.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
    if (open) this.title.focus();
  }

  private renderCount(): void {
    this.title.textContent = `People (${this.rows.size + 1})`;
    this.title.tabIndex = -1;
    this.empty.hidden = this.rows.size > 0;
    this.muteAll.hidden = this.rows.size === 0;
  }

  private rowsMade = 0;

  private row(identity: string): Row {
    // The visible words come first in each button's name (voice control says what it sees).
    const who = (): HTMLElement => h('span', { class: 'visually-hidden who' });
    const name = h('span', { class: 'people-name' });
    const mic = h('span', { class: 'people-mic' });
    const mute = h('button', { type: 'button', class: 'people-mute' }, 'Mute', who());
    const hand = h('span', { class: 'people-hand', hidden: true }, icon(ICONS.hand), ' Hand raised');
    const lowerHand = h('button', { type: 'button', class: 'people-lower-hand', hidden: true }, 'Lower hand', who());
    const lockMic = h('button', { type: 'button', class: 'people-lock-mic' }, h('span', { class: 'words' }), who());
    const lockCam = h('button', { type: 'button', class: 'people-lock-camera' }, h('span', { class: 'words' }), who());
    const lockChat = h('button', { type: 'button', class: 'people-lock-chat' }, h('span', { class: 'words' }), who());
    const remove = h('button', { type: 'button', class: 'people-remove', 'aria-expanded': 'false' }, 'Remove', who());
    const block = h('input', { type: 'checkbox', class: 'people-block' });
    const yes = h('button', { type: 'button', class: 'danger people-remove-confirm' }, 'Remove', who());
    const no = h('button', { type: 'button', class: 'people-remove-cancel' }, 'Cancel');
    const promptId = `people-confirm-${++this.rowsMade}`;
    const prompt = h('p', { id: promptId, class: 'confirm-title' });
    const confirm = h(
      'div',
      { class: 'people-confirm', role: 'group', 'aria-labelledby': promptId, hidden: true },
      prompt,
      h('label', {}, block, ' Do not let them back into this meeting'),
      h('div', { class: 'actions' }, no, yes),
    );
    const el = h(
      'li',
      { 'data-user-id': identity },
      h(
        'div',
        { class: 'people-row' },
        h('span', { class: 'people-who' }, name, mic, hand),
        lowerHand,
        mute,
        lockMic,
        lockCam,
        lockChat,
        remove,
      ),
      confirm,
    );
    const row = { el, name, mic, mute, hand, lowerHand, lockMic, lockCam, lockChat, remove, confirm, prompt, block };
    const closeConfirm = (): void => {
      confirm.hidden = true;
      remove.setAttribute('aria-expanded', 'false');
      remove.focus();
    };
    mute.addEventListener('click', () => void this.mute(identity));
    lowerHand.addEventListener('click', () => void this.lowerHand(identity));
    lockMic.addEventListener('click', () => void this.lock(identity, 'mic', lockMic));
    lockCam.addEventListener('click', () => void this.lock(identity, 'webcam', lockCam));
    lockChat.addEventListener('click', () => void this.lock(identity, 'chat', lockChat));
    remove.addEventListener('click', () => {
      confirm.hidden = false;
      block.checked = false;
      remove.setAttribute('aria-expanded', 'true');
      no.focus();
    });
    no.addEventListener('click', closeConfirm);
    confirm.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') closeConfirm();
    });
    yes.addEventListener('click', () => void this.removeUser(identity, block.checked, yes));
    return row;
  }

  private setBusy(identity: string): void {
    const row = this.rows.get(identity);
    const busy = this.busy.has(identity);
    row?.el.querySelectorAll('button').forEach((b) => (b.disabled = busy));
  }

  /** Runs a call for `key` (an identity, or [`EVERYONE`]), its buttons disabled meanwhile. */
  private async run<R extends ActionResult | MuteResult | LockResult>(
    key: string,
    call: () => Promise<R>,
  ): Promise<R | undefined> {
    if (this.busy.has(key)) return undefined;
    this.busy.add(key);
    this.setBusy(key);
    this.showError(null);
    const result = await call();
    this.busy.delete(key);
    if (this.stopped) return undefined;
    this.setBusy(key);
    if (!result.ok) this.showError(result.msg);
    return result;
  }

  /** Shows what a refused call means (its message key), or hides it (`null`). */
  private showError(msg: string | null): void {
    if (this.stopped) return;
    this.error.hidden = msg === null;
    if (msg === null) return;
    this.error.dataset.msg = msg;
    this.error.textContent = failure(msg);
  }

  private async lowerHand(identity: string): Promise<void> {
    const name = this.rows.get(identity)?.name.textContent ?? identity;
    const result = await this.run(identity, () => raiseHand(this.joinToken(), false, identity));
    if (result?.ok) announce(`${name}'s hand was lowered`);
  }

  /** Locks (or unlocks, when it is locked now) `service` for `identity`. LiveKit's word on
   * their new rights updates the row. */
  private async lock(identity: string, service: LockService, button: HTMLButtonElement): Promise<void> {
    const row = this.rows.get(identity);
    const name = row?.name.textContent ?? identity;
    const state = { mic: row?.el.dataset.micLocked, webcam: row?.el.dataset.cameraLocked, chat: row?.el.dataset.chatLocked };
    const locked = state[service as keyof typeof state] === 'true';
    const result = await this.run(identity, () => updateLock(this.joinToken(), identity, service, !locked));
    if (result && !result.ok && result.msg === 'notifications.media-server-unreachable') {
      // The edge keeps the lock, and gives it to LiveKit once it answers.
      this.showError(null);
      this.say(`Done; it reaches ${name} as soon as the media server answers.`);
      return;
    }
    if (!result?.ok) return;
    const what = service === 'mic' ? 'microphone' : service === 'chat' ? 'chat' : 'camera';
    this.say(locked ? `${name} may use their ${what} again.` : `${name}'s ${what} is locked.`);
    if (button.isConnected) button.focus();
  }

  private async mute(identity: string): Promise<void> {
    const row = this.rows.get(identity);
    const name = row?.name.textContent ?? identity;
    const trackSid = row?.micSid;
    if (!trackSid) return;
    const result = await this.run(identity, () => muteMicrophone(this.joinToken(), identity, trackSid));
    if (result?.ok) announce(`${name}'s microphone was muted`);
  }

  private async muteEveryone(): Promise<void> {
    this.muteAll.disabled = true;
    const result = await this.run(EVERYONE, () => muteEveryone(this.joinToken()));
    this.muteAll.disabled = false;
    if (!result?.ok) return;
    if (result.left > 0) this.say(`${result.muted} microphones muted; ${result.left} still on. Press again.`);
    else this.say(result.muted === 0 ? 'No other microphone was on.' : 'Everyone else is muted.');
  }

  private async removeUser(identity: string, block: boolean, confirmButton: HTMLButtonElement): Promise<void> {
    const name = this.rows.get(identity)?.name.textContent ?? identity;
    const result = await this.run(identity, () => removeParticipant(this.joinToken(), identity, block));
    if (!result?.ok) {
      if (result && confirmButton.isConnected) confirmButton.focus();
      return;
    }
    // LiveKit's word that they left takes the row away; until then it shows no actions.
    const row = this.rows.get(identity);
    if (row) {
      row.confirm.hidden = true;
      row.el.dataset.removed = 'true';
      row.mute.hidden = true;
      row.lowerHand.hidden = true;
      row.lockMic.hidden = true;
      row.lockCam.hidden = true;
      row.lockChat.hidden = true;
      row.remove.hidden = true;
    }
    this.say(block ? `${name} was removed and cannot come back.` : `${name} was removed.`);
    this.title.focus();
  }
}

/** What a refused moderator's call means, in words. */
function failure(msg: string): string {
  switch (msg) {
    case 'notifications.user-not-active':
      return 'They are no longer in the meeting.';
    case 'notifications.no-track-to-mute':
      return 'Their microphone is not on.';
    case 'notifications.only-admin-can-do-this':
      return 'Only a moderator can do that.';
    case 'notifications.user-not-found':
      return 'They are not someone you can act on here.';
    case 'notifications.cannot-lock-admin':
      return 'Moderators cannot be locked.';
    case 'notifications.user-blocked':
      return 'You have been blocked from this meeting.';
    case 'notifications.token-expired':
      return 'Your link has expired.';
    case 'notifications.media-server-unreachable':
    case 'network-error':
      return 'The media server cannot be reached. Try again.';
    default:
      return 'That did not work. Try again.';
  }
}

/** Sets a button's visible words (its first child), keeping the name that follows them. */
function setWords(button: HTMLButtonElement, words: string): void {
  const span = button.firstElementChild;
  if (span && span.textContent !== words) span.textContent = words;
}
