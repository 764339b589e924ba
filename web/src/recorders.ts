// What the room's recorders are doing. The edge writes the session's live jobs into the LiveKit
// room's metadata whenever one changes ({"recorder": {"recording": "ACTIVE", "rtmp":
// "STARTING"}}, a kind with no live job left out), and LiveKit hands it to every page. LiveKit's
// own flag (`room.isRecording`) says only that some recorder is in the room: not whether it
// records or broadcasts, and it drops for a moment whenever a recorder re-joins.

import { setPressed } from './dom';

/** A live job's state, as the recorder node reports it. */
export type JobState = 'STARTING' | 'ACTIVE' | 'ENDING';

/** The live job of each kind, as the edge last wrote them. */
export interface RecorderJobs {
  recording?: JobState;
  rtmp?: JobState;
}

/** How long LiveKit may say no recorder is in the room before the page stops believing that
 * a job starts or runs (its recorder died without a report): longer than a re-join. A job being
 * saved stays so: its recorder has left the room and may upload for minutes. */
export const RECORDER_ABSENT_MS = 30_000;

/** The jobs as they stand once no recorder has been in the room for a while: only saving. */
export function withoutRecorder(jobs: RecorderJobs): RecorderJobs {
  const saving = (state: JobState | undefined) => (state === 'ENDING' ? state : undefined);
  return { recording: saving(jobs.recording), rtmp: saving(jobs.rtmp) };
}

const STATES: readonly string[] = ['STARTING', 'ACTIVE', 'ENDING'];

/** The jobs the room's metadata names; `undefined` when it names none (no job was ever
 * reported in this session, or the metadata is not the edge's). */
export function recorderJobs(metadata: string | undefined): RecorderJobs | undefined {
  if (!metadata) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    return undefined;
  }
  const recorder = (parsed as { recorder?: unknown } | null)?.recorder;
  if (typeof recorder !== 'object' || recorder === null) return undefined;
  const state = (value: unknown): JobState | undefined =>
    typeof value === 'string' && STATES.includes(value) ? (value as JobState) : undefined;
  const { recording, rtmp } = recorder as { recording?: unknown; rtmp?: unknown };
  return { recording: state(recording), rtmp: state(rtmp) };
}

/** Whether a job in `state` is one to offer stopping: asked to start and not yet to stop. */
export function running(state: JobState | undefined): boolean {
  return state === 'STARTING' || state === 'ACTIVE';
}

/**
 * What a moderator's Record or Go live button offers: this page's own last press until the edge
 * next says how the job stands, then that. Before the edge has said anything in this session,
 * LiveKit's flag stands in for it.
 */
export class JobControl {
  /** The state this page's last accepted press asked for, until the edge's next word. */
  private pressed: boolean | undefined;
  /** The edge's last word: `null` until it has said anything. */
  private state: JobState | undefined | null = null;
  /** How many times the edge has spoken: a press's answer older than its last word is moot. */
  private words = 0;

  constructor(private readonly livekitFlag: () => boolean) {}

  /** The edge says the job now stands so (`undefined`: none of this kind is live). Only a
   * change counts as news: the edge writes both kinds whenever either changes, and a word
   * about the other kind says nothing newer than a press of this one. */
  heard(state: JobState | undefined): void {
    if (this.state === state) return;
    this.state = state;
    this.pressed = undefined;
    this.words += 1;
  }

  /** No recorder is in the room (LiveKit says so, and the edge has said nothing, or it has
   * stayed away for long): this page's presses no longer count. */
  forget(): void {
    this.pressed = undefined;
  }

  /** Marks a press about to be sent; give the mark to `answered`. */
  press(): number {
    return this.words;
  }

  /** The press marked `mark` was accepted, or found the job already so: it is now `on`.
   * Ignored when the edge has spoken since the press was sent (its word is as new). */
  answered(mark: number, on: boolean): void {
    if (mark === this.words) this.pressed = on;
  }

  /** Whether the button offers stopping. */
  get on(): boolean {
    if (this.pressed !== undefined) return this.pressed;
    if (this.state === null) return this.livekitFlag();
    return running(this.state);
  }

  /** Whether the job is being stopped and saved (the button waits for it). */
  get ending(): boolean {
    return this.pressed === undefined && this.state === 'ENDING';
  }
}

/** What a job's button says in each state: its text and its accessible name. */
export interface JobButtonWords {
  start: string;
  startLabel: string;
  stop: string;
  stopLabel: string;
  ending: string;
  endingLabel: string;
}

/** Shows on `button` what `job` offers: start, stop, or (disabled) wait while it ends; also
 * disabled while `busy` (a press is on its way to the edge). */
export function showJob(button: HTMLButtonElement, job: JobControl, busy: boolean, words: JobButtonWords): void {
  const { on, ending } = job;
  setPressed(button, on);
  button.disabled = busy || ending;
  button.setAttribute('aria-label', ending ? words.endingLabel : on ? words.stopLabel : words.startLabel);
  const text = button.querySelector('.ctl-text');
  if (text) text.textContent = ending ? words.ending : on ? words.stop : words.start;
}

/** The badge everyone sees: what is being recorded or streamed now; `undefined` for none.
 * While LiveKit says a recorder is in the room, a badge always shows: "Recording" unless the
 * edge says what that recorder does (before its first word, or when its word is stale). The
 * room's metadata can be written by a moderator too, so it may name what runs, never hide it. */
export function badgeText(jobs: RecorderJobs | undefined, livekitFlag: boolean): string | undefined {
  const recording = jobs?.recording === 'ACTIVE';
  const live = jobs?.rtmp === 'ACTIVE';
  if (recording && live) return 'Recording · Live';
  if (recording) return 'Recording';
  if (live) return 'Live';
  return livekitFlag ? 'Recording' : undefined;
}
