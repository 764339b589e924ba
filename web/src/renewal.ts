// Keeps the join token fresh while the page uses it: a meeting, or a wait, may last longer
// than a token lives (`token_validity_secs`, 10 minutes by default), and the page needs a valid
// one to ask again, to end the meeting or to let people in. 60% into its life the token is
// traded at `POST /api/renewToken` for a fresh one.

import { renewToken } from './session';
import { currentToken, keepToken, renewDueInSecs } from './token';

/** Wait before asking again when the edge could not be reached. */
const RETRY_MS = 30_000;
/** Least wait between renewals, whatever a token's life (a very short one must not spin). */
const MIN_WAIT_MS = 5_000;

let timer = 0;
let running = false;

/** Starts renewing the current token (once; a second call does nothing). */
export function keepTokenFresh(): void {
  if (running) return;
  running = true;
  schedule();
}

function schedule(): void {
  const due = renewDueInSecs(currentToken());
  if (due === null) {
    // No token (the meeting ended), or one that never expires.
    running = false;
    return;
  }
  timer = window.setTimeout(() => void renew(), Math.max(MIN_WAIT_MS, due * 1000));
}

async function renew(): Promise<void> {
  window.clearTimeout(timer);
  const token = currentToken();
  if (!token) {
    running = false;
    return;
  }
  const result = await renewToken(token);
  if (result.ok) {
    // Unless the token was forgotten meanwhile (the meeting ended).
    if (currentToken() === token) keepToken(result.token);
    schedule();
  } else if (result.retry) {
    timer = window.setTimeout(() => void renew(), RETRY_MS);
  } else {
    // Refused (the meeting ended, the user was blocked): the page's next call says which.
    running = false;
  }
}
