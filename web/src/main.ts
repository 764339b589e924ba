// The join page: join token → session at the edge → pre-join → LiveKit room → the end screens.

import './styles.css';

import { LogLevel, setLogLevel } from 'livekit-client';

import { showPrejoin, type JoinChoices } from './prejoin';
import { joinRoom } from './room';
import { showEnded, showError, showLeft, showLoading, showRemoved, showWaiting } from './screens';
import { createSession, type SessionResult } from './session';
import './timings';
import { encryptionSupported } from './encryption';
import { applyHostDesign, isEmbedded, mountInHostPage } from './embedding';
import { keepTokenFresh } from './renewal';
import { currentToken, expiredLocally, forgetToken, takeToken } from './token';

function debugEnabled(): boolean {
  try {
    return window.localStorage.getItem('edgemeet-debug') === '1';
  } catch {
    return false;
  }
}

// The page reports problems on screen; the SDK's own logging is for debugging only
// (localStorage['edgemeet-debug'] = '1').
setLogLevel(debugEnabled() ? LogLevel.debug : LogLevel.silent);

// Inside a CMS plugin's page, the page mounts into the element the plugin made (embedding.ts).
mountInHostPage();
applyHostDesign();
// The join token moves from the address bar into this tab (see token.ts).
takeToken(isEmbedded());

/** How often a waiting user's page asks whether they were let in. */
const WAITING_POLL_MS = 3_000;
/** The longest pause between asks while the edge cannot be reached. */
const WAITING_RETRY_MAX_MS = 15_000;

/** Waits `ms`, or less if the page comes back into view (a phone or a background tab slows
 * its timers; the user should not come back to a stale screen). */
function nextAsk(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      window.clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
      resolve();
    };
    const onVisible = (): void => {
      if (document.visibilityState === 'visible') done();
    };
    const timer = window.setTimeout(done, ms);
    document.addEventListener('visibilitychange', onVisible);
  });
}

/** The media choices made once, kept for Retry and Rejoin (which skip the pre-join screen). */
let remembered: Omit<JoinChoices, 'tracks'> | null = null;
let running = false;

async function start(): Promise<void> {
  if (running) return;
  running = true;
  try {
    await run();
  } catch {
    showError('unreachable', () => void start());
  } finally {
    running = false;
  }
}

async function run(): Promise<void> {
  const joinToken = currentToken();
  if (!joinToken) {
    showError('invalid');
    return;
  }
  if (expiredLocally(joinToken)) {
    forgetToken();
    showError('expired');
    return;
  }
  showLoading();
  let result = await createSession(currentToken());
  // In the waiting room: ask again until a moderator decides. The edge being out of reach for
  // a while does not end the wait (the user would lose their place in the list).
  let waited = false;
  let pause = WAITING_POLL_MS;
  const outOfReach = (r: SessionResult): boolean => r.ok === false && r.error === 'unreachable';
  while (result.ok === 'waiting' || (waited && outOfReach(result))) {
    if (result.ok === 'waiting') {
      waited = true;
      keepTokenFresh();
      showWaiting(result.waiting);
      pause = WAITING_POLL_MS;
    } else {
      pause = Math.min(pause * 2, WAITING_RETRY_MAX_MS);
    }
    await nextAsk(pause);
    result = await createSession(currentToken());
  }
  if (!result.ok) {
    if (result.error === 'expired' || result.error === 'invalid') forgetToken();
    showError(result.error, () => void start());
    return;
  }
  const session = result.session;
  if (session.e2ee_key && !encryptionSupported()) {
    showError('unsupported');
    return;
  }
  keepTokenFresh();
  document.title = `${session.room_title} · edgemeet`;

  let choices: JoinChoices;
  if (session.is_hidden) {
    // Hidden users (e.g. recorders) watch only: no devices, no pre-join.
    choices = { camera: false, microphone: false, tracks: [] };
  } else if (remembered) {
    choices = { ...remembered, tracks: [] };
  } else {
    choices = await showPrejoin(session);
  }
  const { tracks: _handedOver, ...kept } = choices;
  remembered = kept;

  await joinRoom(session, currentToken, choices, {
    ended: () => {
      // The meeting is over: nothing to rejoin, so the token goes.
      forgetToken();
      showEnded();
    },
    left: () => showLeft(() => void start()),
    removed: () => showRemoved(() => void start()),
    unreachable: () => showError('unreachable', () => void start()),
    remember: (camera, microphone) => {
      if (remembered && !session.is_hidden) remembered = { ...remembered, camera, microphone };
    },
  });
}

void start();
