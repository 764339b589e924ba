// A moderator's live broadcast: "Go live" opens a small form for the streaming service's RTMP
// URL and stream key (YouTube, Twitch, an own server); the edge sends the room to a recorder
// node, which streams the same composite it would record. The key is typed here and sent only
// to the edge, never stored by the page.

import { ICONS, controlButton, h } from './dom';
import { JobControl, showJob, type JobButtonWords, type JobState } from './recorders';
import { recording } from './session';

const LIVE_WORDS: JobButtonWords = {
  start: 'Go live',
  startLabel: 'Start a live broadcast',
  stop: 'Stop live',
  stopLabel: 'Stop the live broadcast',
  ending: 'Ending…',
  endingLabel: 'The live broadcast is ending',
};

export class Broadcast {
  readonly button: HTMLButtonElement;
  readonly panel: HTMLElement;
  private readonly url: HTMLInputElement;
  private readonly key: HTMLInputElement;
  private readonly start: HTMLButtonElement;
  private readonly error: HTMLElement;
  /** Whether the room is broadcasting. Before the edge's first word, nothing says so:
   * LiveKit's recording flag does not tell a broadcast from a recording. */
  private readonly job = new JobControl(() => false);
  private destroyed = false;
  /** A stop is on its way to the edge. */
  private stopping = false;

  constructor(
    private readonly joinToken: () => string,
    private readonly say: (text: string) => void,
    /** A press was answered: the recorder has a re-join's time from now to come. */
    private readonly answered: () => void,
  ) {
    this.button = controlButton('toggle-live', 'Start a live broadcast', 'Go live', ICONS.live, 'ctl-live');
    this.button.setAttribute('aria-expanded', 'false');
    this.button.setAttribute('aria-controls', 'live-panel');
    this.url = h('input', {
      id: 'live-url',
      type: 'url',
      required: true,
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'rtmp://live.example.com/app',
    });
    this.key = h('input', { id: 'live-key', type: 'password', autocomplete: 'off', placeholder: 'optional' });
    this.start = h('button', { id: 'live-start', type: 'submit', class: 'primary' }, 'Start');
    const cancel = h('button', { id: 'live-cancel', type: 'button' }, 'Cancel');
    this.error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
    const form = h(
      'form',
      { class: 'live-form' },
      h('label', { for: 'live-url' }, 'Stream URL'),
      this.url,
      h('label', { for: 'live-key' }, 'Stream key'),
      this.key,
      this.error,
      h('div', { class: 'actions' }, cancel, this.start),
    );
    this.panel = h(
      'div',
      { id: 'live-panel', class: 'confirm', role: 'group', 'aria-labelledby': 'live-title', hidden: true },
      h('p', { id: 'live-title', class: 'confirm-title' }, 'Broadcast this meeting'),
      form,
    );
    this.button.addEventListener('click', () => (this.job.on ? this.stop() : this.open()));
    cancel.addEventListener('click', () => this.close());
    this.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.close();
    });
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.begin();
    });
    this.render();
  }

  /** The edge says the room's broadcast now stands so (`undefined`: none is live). */
  heard(state: JobState | undefined): void {
    this.job.heard(state);
    this.render();
  }

  /** No recorder is in the room (see `JobControl.forget`). */
  recorderLeft(): void {
    this.job.forget();
    this.render();
  }

  destroy(): void {
    this.destroyed = true;
  }

  private open(): void {
    this.panel.hidden = false;
    this.error.hidden = true;
    this.button.setAttribute('aria-expanded', 'true');
    this.url.focus();
  }

  private close(): void {
    this.panel.hidden = true;
    this.key.value = '';
    this.button.setAttribute('aria-expanded', 'false');
    this.button.focus();
  }

  private fail(text: string): void {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  private begin(): void {
    const base = this.url.value.trim();
    if (!/^rtmps?:\/\/[^\s/]+/i.test(base)) {
      this.fail('The stream URL starts with rtmp:// or rtmps://.');
      return;
    }
    const key = this.key.value.trim();
    const target = key ? `${base.replace(/\/+$/, '')}/${key}` : base;
    this.start.disabled = true;
    this.error.hidden = true;
    const mark = this.job.press();
    void recording(this.joinToken(), 'START_RTMP', target).then((result) => {
      if (this.destroyed) return;
      this.start.disabled = false;
      if (result.ok || result.msg === 'notifications.rtmp-already-running') {
        this.job.answered(mark, true);
        this.answered();
        this.close();
        this.say(result.ok ? 'The broadcast will start in a moment.' : 'The meeting is already live.');
      } else {
        this.fail(broadcastFailure(result.msg));
      }
      this.render();
    });
  }

  private stop(): void {
    this.stopping = true;
    this.render();
    const mark = this.job.press();
    void recording(this.joinToken(), 'STOP_RTMP').then((result) => {
      if (this.destroyed) return;
      this.stopping = false;
      if (result.ok || result.msg === 'notifications.rtmp-not-running') this.job.answered(mark, false);
      else this.say(`The broadcast could not be stopped: ${broadcastFailure(result.msg)}`);
      this.render();
    });
  }

  private render(): void {
    showJob(this.button, this.job, this.stopping, LIVE_WORDS);
  }
}

/** What the edge's refusal of a recorder job means to the user, for the answers Record and Go
 * live share (no recorder free, none reachable, no server); `undefined` for the others. */
export function recorderProblem(msg: string): string | undefined {
  switch (msg) {
    case 'notifications.no-recorder-available':
      return 'No recorder is free right now. Try again in a minute.';
    case 'notifications.recorder-unreachable':
      return 'The recorder cannot be reached. Try again.';
    case 'network-error':
      return 'The server cannot be reached.';
    default:
      return undefined;
  }
}

function broadcastFailure(msg: string): string {
  if (msg === 'notifications.rtmp-not-allowed') return 'This room cannot be broadcast.';
  // Else the recorder's own reason, e.g. an address it may not stream to.
  return recorderProblem(msg) ?? msg;
}
