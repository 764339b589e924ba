// End-to-end encryption, in a room created with it: the edge gives the room's key with the
// session, and livekit-client encrypts what this page publishes and decrypts what it receives
// in a worker (built to /assets/e2ee-worker-<hash>.js next to this bundle, loaded only here).
// LiveKit forwards media it cannot read.

import { ExternalE2EEKeyProvider, isE2EESupported, type E2EEManagerOptions } from 'livekit-client';

/** The worker's file name, next to this bundle (set by web/build.mjs). */
declare const __EDGEMEET_E2EE_WORKER__: string;

/** The worker's URL. */
function workerUrl(): URL {
  return new URL(__EDGEMEET_E2EE_WORKER__, import.meta.url);
}

/**
 * Starts the worker. A worker's script must come from the page's origin, so inside a CMS
 * plugin's page (another origin than the edge's) a one-line module from a blob URL (the page's
 * origin) imports it; the edge serves it to any origin. The constructor resolves the blob URL,
 * so it is revoked at once.
 */
function startWorker(): Worker {
  const url = workerUrl();
  if (url.origin === window.location.origin) return new Worker(url, { type: 'module' });
  const loader = new Blob([`import ${JSON.stringify(url.href)};`], { type: 'text/javascript' });
  const loaderUrl = URL.createObjectURL(loader);
  try {
    return new Worker(loaderUrl, { type: 'module' });
  } finally {
    URL.revokeObjectURL(loaderUrl);
  }
}

/** Whether this browser can take part in an encrypted meeting (Web Crypto exists only in a
 * secure context). */
export function encryptionSupported(): boolean {
  return window.isSecureContext && !!window.crypto?.subtle && isE2EESupported();
}

/** The room options for a meeting encrypted with `key`; `null` when this browser cannot. The
 * caller terminates the worker when the meeting is over. */
export async function encryptionWith(key: string): Promise<E2EEManagerOptions | null> {
  if (!encryptionSupported()) return null;
  const keyProvider = new ExternalE2EEKeyProvider();
  await keyProvider.setKey(key);
  return { keyProvider, worker: startWorker() };
}
