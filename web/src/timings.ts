// `window.edgemeetTimings`: when the LiveKit room connected and when the room screen was first
// shown (performance.now() values), for the system tests and the page benchmark.

export interface EdgemeetTimings {
  connected?: number;
  roomShown?: number;
}

declare global {
  interface Window {
    edgemeetTimings: EdgemeetTimings;
  }
}

export const timings: EdgemeetTimings = (window.edgemeetTimings = window.edgemeetTimings ?? {});

/** A new connection attempt: its own measurements. */
export function resetTimings(): void {
  delete timings.connected;
  delete timings.roomShown;
}

export function markConnected(): void {
  timings.connected = performance.now();
}

export function markRoomShown(): void {
  if (timings.roomShown === undefined) timings.roomShown = performance.now();
}
