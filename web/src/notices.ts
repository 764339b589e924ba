// What the backend tells the people in the meeting (plugNmeet's `room/broadcastToRoom`): the
// edge has LiveKit carry it from the server on the `edgemeet.notice` topic. Only packets with no
// participant as sender are taken, so no one in the room can pass a message off as the
// organiser's (LiveKit stamps a participant's packet with its identity; the edge lets no hidden
// user, whose identity LiveKit blanks, publish data). Information fades after a while;
// warnings and errors stay until dismissed.

import { h } from './dom';

/** The topic the edge sends notices on. */
export const NOTICE_TOPIC = 'edgemeet.notice';

const INFO_SHOWN_MS = 15_000;
const MOST_SHOWN = 3;

type Level = 'info' | 'warning' | 'error';

interface Notice {
  kind: 'notification' | 'chat';
  text: string;
  level: Level;
  withSound: boolean;
}

/** A notice from its packet, or `undefined` for anything else. */
export function readNotice(payload: Uint8Array): Notice | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.text !== 'string' || !v.text) return undefined;
  const level: Level = v.level === 'warning' || v.level === 'error' ? v.level : 'info';
  return {
    kind: v.kind === 'chat' ? 'chat' : 'notification',
    text: v.text,
    level,
    withSound: v.with_sound === true,
  };
}

export class Notices {
  readonly el = h('section', { class: 'notices', 'aria-label': 'Messages from the organiser' });
  private audio: AudioContext | undefined;

  show(notice: Notice): void {
    const label = notice.kind === 'chat' ? 'Message from the organiser' : LABELS[notice.level];
    const close = h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss' }, '×');
    const item = h(
      'div',
      { class: 'notice', 'data-level': notice.level, role: notice.level === 'error' ? 'alert' : 'status' },
      h('p', {}, h('strong', {}, `${label}: `), notice.text),
      close,
    );
    close.addEventListener('click', () => item.remove());
    this.el.prepend(item);
    while (this.el.children.length > MOST_SHOWN) this.el.lastElementChild?.remove();
    if (notice.level === 'info') window.setTimeout(() => item.remove(), INFO_SHOWN_MS);
    if (notice.withSound) this.chime();
  }

  /** A short tone (no sound file: the page loads nothing but its own assets). */
  private chime(): void {
    try {
      this.audio ??= new AudioContext();
      const ctx = this.audio;
      // Created outside a click, it may start suspended; the user has clicked Join by now.
      if (ctx.state === 'suspended') void ctx.resume().catch(() => undefined);
      const tone = ctx.createOscillator();
      const gain = ctx.createGain();
      tone.frequency.value = 880;
      gain.gain.setValueAtTime(0.15, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.4);
      tone.connect(gain).connect(ctx.destination);
      tone.start();
      tone.stop(ctx.currentTime + 0.4);
    } catch {
      // No sound where the browser allows none; the notice still shows.
    }
  }

  destroy(): void {
    void this.audio?.close().catch(() => undefined);
    this.el.replaceChildren();
  }
}

const LABELS: Record<Level, string> = {
  info: 'Notice',
  warning: 'Warning',
  error: 'Important',
};
