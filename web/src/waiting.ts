// A moderator's view of the waiting room, inside the meeting: who waits, with Let in and Turn
// away for each and Let everyone in. The list is asked of the edge every few seconds while the
// meeting screen is shown (the edge keeps the waiting room; LiveKit never sees waiting users).

import { announce, h } from './dom';
import { decideWaiting, waitingUsers, type WaitingUser } from './session';

/** How often the list is asked for. */
const POLL_MS = 3_000;

export class WaitingList {
  readonly el = h('section', { id: 'waiting-list', class: 'waiting-list', 'aria-labelledby': 'waiting-title', hidden: true });
  private readonly title = h('h2', { id: 'waiting-title' });
  private readonly list = h('ul', {});
  private readonly error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
  private timer = 0;
  private stopped = false;
  /** Ids shown now, to announce newcomers once. */
  private shown = new Set<string>();

  /** `joinToken`: the join token in use now (it is renewed during the meeting). */
  constructor(private readonly joinToken: () => string) {
    const everyone = h(
      'button',
      { id: 'waiting-approve-all', type: 'button', class: 'primary', 'aria-label': 'Let everyone waiting in' },
      'Let everyone in',
    );
    everyone.addEventListener('click', () => void this.decide('approve', 'all', everyone));
    this.el.append(this.title, this.list, this.error, h('div', { class: 'actions' }, everyone));
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
    // A failed ask keeps what is shown; the next one may answer.
    if (users) this.render(users);
    this.timer = window.setTimeout(() => void this.refresh(), POLL_MS);
  }

  private render(users: WaitingUser[]): void {
    const newcomers = users.filter((u) => !this.shown.has(u.user_id));
    this.shown = new Set(users.map((u) => u.user_id));
    this.el.hidden = users.length === 0;
    this.title.textContent = `Waiting to join (${users.length})`;
    this.list.replaceChildren(
      ...users.map((user) => {
        const admit = h(
          'button',
          { type: 'button', class: 'primary waiting-approve', 'aria-label': `Let ${user.name} in` },
          'Let in',
        );
        const refuse = h(
          'button',
          { type: 'button', class: 'waiting-reject', 'aria-label': `Turn ${user.name} away` },
          'Turn away',
        );
        admit.addEventListener('click', () => void this.decide('approve', user.user_id, admit, refuse));
        refuse.addEventListener('click', () => void this.decide('reject', user.user_id, admit, refuse));
        return h('li', { 'data-user-id': user.user_id }, h('span', { class: 'waiting-name' }, user.name), admit, refuse);
      }),
    );
    if (newcomers.length === 1) announce(`${newcomers[0].name} is waiting to join`);
    else if (newcomers.length > 1) announce(`${newcomers.length} people are waiting to join`);
  }

  private async decide(decision: 'approve' | 'reject', userId: string, ...buttons: HTMLButtonElement[]): Promise<void> {
    buttons.forEach((b) => (b.disabled = true));
    this.error.hidden = true;
    const result = await decideWaiting(this.joinToken(), decision, userId);
    if (this.stopped) return;
    buttons.forEach((b) => (b.disabled = false));
    if (!result.ok) {
      this.error.dataset.msg = result.msg;
      this.error.textContent =
        result.msg === 'notifications.user-not-waiting'
          ? 'They are no longer waiting.'
          : 'That did not work. Try again.';
      this.error.hidden = false;
    }
    await this.refresh();
  }
}
