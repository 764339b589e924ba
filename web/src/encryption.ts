// End-to-end encryption, in a room created with it: the edge gives the room's key with the
// session, and livekit-client encrypts what this page publishes and decrypts what it receives
// in a worker (built to /assets/e2ee-worker-<hash>.js, named in index.html, loaded only here).
// LiveKit forwards media it cannot read.

import { ExternalE2EEKeyProvider, isE2EESupported, type E2EEManagerOptions } from 'livekit-client';

/** The worker's URL, as the build wrote it into index.html. */
function workerUrl(): string | null {
  return document.querySelector<HTMLMetaElement>('meta[name="edgemeet-e2ee-worker"]')?.content || null;
}

/** Whether this browser can take part in an encrypted meeting (Web Crypto exists only in a
 * secure context). */
export function encryptionSupported(): boolean {
  return workerUrl() !== null && window.isSecureContext && !!window.crypto?.subtle && isE2EESupported();
}

/** The room options for a meeting encrypted with `key`; `null` when this browser cannot. The
 * caller terminates the worker when the meeting is over. */
export async function encryptionWith(key: string): Promise<E2EEManagerOptions | null> {
  const url = workerUrl();
  if (!url || !encryptionSupported()) return null;
  const keyProvider = new ExternalE2EEKeyProvider();
  await keyProvider.setKey(key);
  return { keyProvider, worker: new Worker(url, { type: 'module' }) };
}
