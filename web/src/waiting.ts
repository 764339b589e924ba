// A moderator's view of the waiting room, inside the meeting: who waits, with Let in and Turn
// away for each and Let everyone in; and, in the People panel, the message they read, which the
// moderator can change whether or not anyone waits yet. The list is asked of the edge every few seconds while the
// meeting screen is shown (the edge keeps the waiting room; LiveKit never sees waiting users).
// Rows are kept by user id, so a poll never takes a button away from under the pointer or the
// keyboard focus.

import { announce, h } from './dom';
import { decideWaiting, updateWaitingMessage, waitingUsers, type WaitingUser, type WaitingUsers } from './session';

/** How often the list is asked for. */
const POLL_MS = 3_000;
/** The edge's bound on the message, in UTF-8 bytes, and on a call's body. */
const MAX_MESSAGE_BYTES = 2048;
const MAX_BODY_BYTES = 4096;

export class WaitingList {
  readonly el = h('section', { id: 'waiting-list', class: 'waiting-list', 'aria-labelledby': 'waiting-title', hidden: true });
  private readonly title = h('h2', { id: 'waiting-title' });
  private readonly list = h('ul', {});
  private readonly error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
  private readonly everyone = h('button', { id: 'waiting-approve-all', type: 'button', class: 'primary' }, 'Let everyone in');
  /** The rows shown, by user id. */
  private readonly rows = new Map<string, HTMLLIElement>();
  /** Decisions on their way, by user id (`all` for everyone): their buttons stay disabled. */
  private readonly deciding = new Set<string>();
  private timer = 0;
  private stopped = false;

  /** `joinToken`: the join token in use now (it is renewed during the meeting). */
  constructor(private readonly joinToken: () => string) {
    this.everyone.addEventListener('click', () => void this.decide('approve', 'all'));
    this.el.append(this.title, this.list, this.error, h('div', { class: 'actions' }, this.everyone));
  }

  /** Starts asking; the first answer comes at once. */
  start(): void {
    void this.refresh();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
  }

  private async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const users = await waitingUsers(this.joinToken());
    if (this.stopped) return;
    if (users === 'refused') {
      // No longer a moderator here (or the token was refused): nothing to show or decide.
      this.stop();
      this.el.hidden = true;
      return;
    }
    // A failed ask keeps what is shown; the next one may answer.
    if (users !== 'unknown') this.render(users);
    this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
  }

  private render({ users, total }: WaitingUsers): void {
    const ids = new Set(users.map((u) => u.user_id));
    for (const [id, row] of this.rows) {
      if (!ids.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    const newcomers: WaitingUser[] = [];
    let previous: HTMLLIElement | null = null;
    for (const user of users) {
      let row = this.rows.get(user.user_id);
      if (!row) {
        row = this.row(user);
        this.rows.set(user.user_id, row);
        newcomers.push(user);
      }
      // Longest waiting first, moving only rows that are out of place.
      const expected: ChildNode | null = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== row) this.list.insertBefore(row, expected);
      previous = row;
    }
    this.el.hidden = users.length === 0;
    // The edge lists the longest waiting 200; the title says when more wait.
    const title =
      total > users.length
        ? `Waiting to join (${total}, the first ${users.length} shown)`
        : `Waiting to join (${users.length})`;
    if (this.title.textContent !== title) this.title.textContent = title;
    this.everyone.disabled = this.deciding.has('all');
    if (newcomers.length === 1) announce(`${newcomers[0].name} is waiting to join`);
    else if (newcomers.length > 1) announce(`${newcomers.length} people are waiting to join`);
  }

  private row(user: WaitingUser): HTMLLIElement {
    // The visible words come first in each button's name (voice control says what it sees).
    const who = (): HTMLElement => h('span', { class: 'visually-hidden' }, ` ${user.name}`);
    const admit = h('button', { type: 'button', class: 'primary waiting-approve' }, 'Let in', who());
    const refuse = h('button', { type: 'button', class: 'waiting-reject' }, 'Turn away', who());
    admit.addEventListener('click', () => void this.decide('approve', user.user_id));
    refuse.addEventListener('click', () => void this.decide('reject', user.user_id));
    const row = h('li', { 'data-user-id': user.user_id }, h('span', { class: 'waiting-name' }, user.name), admit, refuse);
    this.setBusy(row, this.deciding.has(user.user_id));
    return row;
  }

  private setBusy(row: HTMLElement | undefined, busy: boolean): void {
    row?.querySelectorAll('button').forEach((b) => (b.disabled = busy));
  }

  private showError(text: string, msg = ''): void {
    this.error.dataset.msg = msg;
    this.error.textContent = text;
    this.error.hidden = false;
  }

  private async decide(decision: 'approve' | 'reject', userId: string): Promise<void> {
    if (this.deciding.has(userId)) return;
    this.deciding.add(userId);
    if (userId === 'all') this.everyone.disabled = true;
    this.setBusy(this.rows.get(userId), true);
    this.error.hidden = true;
    const result = await decideWaiting(this.joinToken(), decision, userId);
    this.deciding.delete(userId);
    if (this.stopped) return;
    if (userId === 'all') this.everyone.disabled = false;
    this.setBusy(this.rows.get(userId), false);
    if (!result.ok) {
      this.showError(
        result.msg === 'notifications.user-not-waiting' ? 'They are no longer waiting.' : 'That did not work. Try again.',
        result.msg,
      );
    }
    await this.refresh();
  }
}

/** The message those waiting read, as a moderator changes it (in the People panel). */
export class WaitingMessage {
  readonly el = h('fieldset', { id: 'waiting-message-editor', class: 'waiting-message-editor' });
  private readonly input = h('textarea', { id: 'waiting-message-input', rows: 2 });
  private readonly save = h('button', { id: 'waiting-message-save', type: 'button' }, 'Update message');
  private readonly error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });

  /** `message`: what waiting users read now; `say`: a short message on the meeting screen. */
  constructor(
    private readonly joinToken: () => string,
    message: string,
    private readonly say: (text: string) => void,
  ) {
    this.input.value = message;
    this.save.addEventListener('click', () => void this.update());
    this.el.append(
      h('legend', {}, 'Waiting room'),
      h('label', { for: 'waiting-message-input', class: 'waiting-message-label' }, 'Message for those waiting'),
      this.input,
      this.error,
      h('div', { class: 'actions' }, this.save),
    );
  }

  private async update(): Promise<void> {
    const text = this.input.value.trim();
    const bytes = (v: string): number => new TextEncoder().encode(v).length;
    if (bytes(text) > MAX_MESSAGE_BYTES || bytes(JSON.stringify({ msg: text })) > MAX_BODY_BYTES) {
      this.showError('The message is too long.');
      return;
    }
    this.save.disabled = true;
    this.error.hidden = true;
    const result = await updateWaitingMessage(this.joinToken(), text);
    this.save.disabled = false;
    if (result.ok) this.say(text ? 'Those waiting now read your message.' : 'The message for those waiting was cleared.');
    else this.showError('The message could not be changed. Try again.', result.msg);
  }

  private showError(text: string, msg = ''): void {
    this.error.dataset.msg = msg;
    this.error.textContent = text;
    this.error.hidden = false;
  }
}

