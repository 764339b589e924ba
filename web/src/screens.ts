// The simple screens: loading, connecting, the error screens, and the ends of a meeting.

import { h, showScreen } from './dom';
import type { ErrorKind, Waiting } from './session';

const ERRORS: Record<ErrorKind, { title: string; text: string }> = {
  expired: {
    title: 'This link has expired',
    text: 'Ask the meeting organiser for a new link to join.',
  },
  invalid: {
    title: 'This link is not valid',
    text: 'Check that you opened the whole link, or ask the meeting organiser for a new one.',
  },
  'not-active': {
    title: 'This meeting has ended',
    text: 'It may also not have started yet. Try your link again later.',
  },
  blocked: {
    title: 'You cannot join this meeting',
    text: 'A moderator has blocked you from this meeting.',
  },
  unreachable: {
    title: 'The media server cannot be reached',
    text: 'Check your connection and try again.',
  },
  unsupported: {
    title: 'This browser cannot join an encrypted meeting',
    text: 'The meeting is end-to-end encrypted. Open the link in a recent Chrome, Edge, Firefox or Safari.',
  },
};

function message(title: string, text: string, ...actions: Node[]): HTMLElement {
  return h(
    'section',
    { class: 'message' },
    h('h1', {}, title),
    h('p', {}, text),
    actions.length ? h('div', { class: 'actions' }, ...actions) : null,
  );
}

export function showLoading(text = 'Checking your link…'): void {
  showScreen('loading', [
    h('section', { class: 'message' }, h('div', { class: 'spinner', 'aria-hidden': 'true' }), h('h1', {}, text)),
  ]);
}

export function showConnecting(title: string): void {
  showScreen('connecting', [
    h(
      'section',
      { class: 'message' },
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      h('h1', {}, `Joining ${title}…`),
    ),
  ]);
}

/** The waiting room: the user waits for a moderator; the page asks the edge again meanwhile.
 * Shown once; later asks change only what changed (a screen rebuilt every few seconds would
 * take the focus and be read out again each time). */
export function showWaiting(waiting: Waiting): void {
  const shown = document.querySelector<HTMLElement>('#app[data-screen="waiting"] .waiting-message');
  if (shown) {
    if (shown.textContent !== waiting.message) shown.textContent = waiting.message;
    shown.hidden = !waiting.message;
    return;
  }
  showScreen('waiting', [
    h(
      'section',
      { class: 'message' },
      h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      h('h1', {}, 'Waiting for a moderator to let you in'),
      waiting.room_title ? h('p', {}, waiting.room_title) : null,
      h('p', { class: 'waiting-message', hidden: !waiting.message }, waiting.message),
      h('p', {}, 'Keep this page open: you join as soon as you are let in.'),
    ),
  ]);
  document.title = `Waiting · ${waiting.room_title || 'edgemeet'}`;
}

/** An error screen; the unreachable one offers Retry. */
export function showError(kind: ErrorKind, onRetry?: () => void): void {
  const { title, text } = ERRORS[kind];
  const retry =
    kind === 'unreachable' && onRetry
      ? h('button', { id: 'retry', type: 'button', class: 'primary', 'aria-label': 'Retry', onclick: () => onRetry() }, 'Retry')
      : null;
  showScreen('error', [message(title, text, ...(retry ? [retry] : []))], kind);
  document.title = `${title} · edgemeet`;
}

export function showEnded(): void {
  showScreen('ended', [message('This meeting has ended', 'Thank you for taking part. You can close this page.')]);
  document.title = 'Meeting ended · edgemeet';
}

/** An end of the meeting for this user only, with Rejoin. */
function showRejoinable(screen: 'left' | 'removed', title: string, text: string, tab: string, onRejoin: () => void): void {
  showScreen(screen, [
    message(
      title,
      text,
      h('button', { id: 'rejoin', type: 'button', class: 'primary', 'aria-label': 'Rejoin the meeting', onclick: () => onRejoin() }, 'Rejoin'),
    ),
  ]);
  document.title = `${tab} · edgemeet`;
}

export function showLeft(onRejoin: () => void): void {
  showRejoinable('left', 'You left the meeting', 'You can join again while the meeting is running.', 'You left', onRejoin);
}

/** A moderator removed the user. Rejoin asks the edge again: a user they also blocked then
 * sees the blocked screen. */
export function showRemoved(onRejoin: () => void): void {
  showRejoinable(
    'removed',
    'A moderator removed you from the meeting',
    'You can try to join again, unless they have blocked you.',
    'Removed from the meeting',
    onRejoin,
  );
}
