// Keeps the join token fresh while the page uses it: a meeting, or a wait, may last longer
// than a token lives (`token_validity_secs`, 10 minutes by default), and the page needs a valid
// one to ask again, to end the meeting or to let people in. The token is traded at
// `POST /api/renewToken` for a fresh one soon after the page starts (the link's token may be
// old already, and this device's clock may be wrong, so its age cannot be told here), then
// each time 60% of a fresh token's life has passed since it arrived.

import { renewToken } from './session';
import { currentToken, keepToken, lifetimeSecs } from './token';

/** Share of a fresh token's life after which it is renewed. */
const RENEW_AT = 0.6;
/** The first renewal, after the page starts. */
const FIRST_MS = 5_000;
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
  timer = window.setTimeout(() => void renew(), FIRST_MS);
}

async function renew(): Promise<void> {
  window.clearTimeout(timer);
  const token = currentToken();
  if (!token) {
    // Forgotten: the meeting ended.
    running = false;
    return;
  }
  const result = await renewToken(token);
  if (result.ok) {
    // Unless the token was forgotten meanwhile (the meeting ended).
    if (currentToken() !== token) {
      running = false;
      return;
    }
    keepToken(result.token);
    const life = lifetimeSecs(result.token);
    if (life === null) {
      running = false;
      return;
    }
    timer = window.setTimeout(() => void renew(), Math.max(MIN_WAIT_MS, life * RENEW_AT * 1000));
  } else if (result.retry) {
    timer = window.setTimeout(() => void renew(), RETRY_MS);
  } else {
    // Refused (the meeting ended, the user was blocked, a newer link replaced this one): the
    // page's next call says which.
    running = false;
  }
}
