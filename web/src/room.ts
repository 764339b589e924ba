// The meeting itself: connects to the region's LiveKit server, publishes the pre-join choices,
// and runs the in-room screen (grid, remote audio, control bar, ending the meeting).

import {
  ConnectionState,
  DisconnectReason,
  Room,
  RoomEvent,
  Track,
  type E2EEManagerOptions,
  type LocalTrack,
  type Participant,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
} from 'livekit-client';

import { Broadcast, recorderProblem } from './broadcast';
import { CHAT_TOPIC, Chat, PLAIN_CHAT, sealedChat, type ChatCipher } from './chat';
import { ICONS, announce, controlButton, h, setPressed, showScreen } from './dom';
import { cameraCapture, hostLogo, hostMedia } from './embedding';
import { encryptionWith } from './encryption';
import { Grid } from './grid';
import {
  JobControl,
  RECORDER_ABSENT_MS,
  badgeText,
  recorderJobs,
  showJob,
  withoutRecorder,
  type JobButtonWords,
  type RecorderJobs,
} from './recorders';
import { mediaProblem, problemText, type JoinChoices } from './prejoin';
import { showConnecting } from './screens';
import { endRoom, mayPublish, raiseHand, recording, type Session } from './session';
import { NOTICE_TOPIC, Notices, readNotice } from './notices';
import { PeopleList } from './people';
import { mayPublishNow, userMetadataOf } from './locks';
import { WaitingList, WaitingMessage } from './waiting';
import { markConnected, markRoomShown, resetTimings } from './timings';

export interface RoomExits {
  /** The meeting was ended (by a moderator, this one included). */
  ended(): void;
  /** The user pressed Leave. */
  left(): void;
  /** A moderator removed the user. */
  removed(): void;
  /** The connection could not be made or was lost for good. */
  unreachable(): void;
  /** The media state to restore on a rejoin. */
  remember(camera: boolean, microphone: boolean): void;
}

/** How long to wait, after the edge ended the meeting, for LiveKit to say so itself. */
const END_FALLBACK_MS = 8_000;
const TOAST_MS = 6_000;

/**
 * A camera/microphone/screen toggle whose button shows the state asked for at once, while the
 * SDK catches up; clicks made meanwhile are applied in order.
 */
class MediaToggle {
  private want: boolean | undefined;
  private running = false;
  /** What the user last asked for (kept for a rejoin: the SDK's state is gone by then). */
  intended = false;

  constructor(
    private readonly actual: () => boolean,
    private readonly apply: (on: boolean) => Promise<unknown>,
    private readonly failed: (error: unknown) => void,
    private readonly render: () => void,
  ) {}

  /** A change asked for here is still being applied. */
  get busy(): boolean {
    return this.running || this.want !== undefined;
  }

  /** The state shown: the one asked for, else the real one. */
  get on(): boolean {
    return this.want ?? this.actual();
  }

  flip(): void {
    this.set(!this.on);
  }

  /** Drops a change still waiting to be applied, and what the user asked for (the source was
   * locked: there is nothing left to turn on). */
  cancel(): void {
    this.want = undefined;
    this.intended = false;
  }

  set(on: boolean): Promise<void> {
    this.want = on;
    this.intended = on;
    this.render();
    return this.run();
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let tries = 0;
    while (this.want !== undefined && this.want !== this.actual() && tries++ < 4) {
      const target = this.want;
      try {
        await this.apply(target);
      } catch (error) {
        if (this.want === target) {
          this.want = undefined;
          this.intended = this.actual();
          this.failed(error);
        }
      }
    }
    this.want = undefined;
    this.running = false;
    this.render();
  }
}


const RECORD_WORDS: JobButtonWords = {
  start: 'Record',
  startLabel: 'Start recording',
  stop: 'Stop recording',
  stopLabel: 'Stop recording',
  ending: 'Saving…',
  endingLabel: 'The recording is being saved',
};

const canShareScreen = (): boolean => typeof navigator.mediaDevices?.getDisplayMedia === 'function';

/** Connects and runs the meeting until it ends, the user leaves, or the connection is lost. */
export async function joinRoom(
  session: Session,
  joinToken: () => string,
  choices: JoinChoices,
  exits: RoomExits,
): Promise<void> {
  resetTimings();
  showConnecting(session.room_title);
  // An encrypted room (the page checked support before the pre-join screen): nothing is
  // published before encryption is on, and a failure here leaves no camera or worker behind.
  let e2ee: E2EEManagerOptions | null = null;
  let room: Room;
  try {
    e2ee = session.e2ee_key ? await encryptionWith(session.e2ee_key) : null;
    if (session.e2ee_key && !e2ee) throw new Error('end-to-end encryption is not available');
    const media = hostMedia(!!e2ee);
    room = new Room({
      adaptiveStream: true,
      dynacast: media.dynacast,
      publishDefaults: media.publishDefaults,
      videoCaptureDefaults: cameraCapture(choices.cameraId),
      audioCaptureDefaults: choices.microphoneId ? { deviceId: choices.microphoneId } : undefined,
      e2ee: e2ee ?? undefined,
    });
    if (e2ee) await room.setE2EEEnabled(true);
  } catch {
    choices.tracks.forEach((t) => t.stop());
    e2ee?.worker.terminate();
    exits.unreachable();
    return;
  }

  let phase: 'connecting' | 'room' | 'closed' = 'connecting';
  let view: RoomView | undefined;
  let endedHere = false;

  const close = (exit: () => void): void => {
    if (phase === 'closed') return;
    phase = 'closed';
    if (view) exits.remember(view.cameraOn, view.microphoneOn);
    view?.destroy();
    choices.tracks.forEach((t) => t.stop());
    e2ee?.worker.terminate();
    exit();
  };

  room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
    if (phase !== 'room') return; // a failed connect is handled where it is awaited
    const ended =
      endedHere || reason === DisconnectReason.ROOM_DELETED || reason === DisconnectReason.ROOM_CLOSED;
    if (ended) close(exits.ended);
    else close(reason === DisconnectReason.PARTICIPANT_REMOVED ? exits.removed : exits.unreachable);
  });

  try {
    await room.connect(session.livekit_url, session.token);
  } catch {
    phase = 'room'; // so that close() runs once
    close(exits.unreachable);
    void room.disconnect().catch(() => undefined);
    return;
  }
  if (room.state !== ConnectionState.Connected) {
    phase = 'room';
    close(exits.unreachable);
    return;
  }
  markConnected();
  phase = 'room';

  view = new RoomView(room, session, joinToken, choices, {
    leave: async () => {
      const current = view;
      if (current) exits.remember(current.cameraOn, current.microphoneOn);
      phase = 'closed';
      current?.destroy();
      choices.tracks.forEach((t) => t.stop());
      await room.disconnect().catch(() => undefined);
      e2ee?.worker.terminate();
      exits.left();
    },
    endedHere: () => {
      endedHere = true;
      window.setTimeout(() => {
        if (phase !== 'room') return;
        void room.disconnect().catch(() => undefined);
        close(exits.ended);
      }, END_FALLBACK_MS);
    },
  });
  view.show();
  markRoomShown();
  view.publish();
}

interface ViewActions {
  leave(): Promise<void>;
  endedHere(): void;
}

class RoomView {
  private readonly grid: Grid;
  private readonly audioSink = h('div', { class: 'audio-sink', 'aria-hidden': 'true' });
  private readonly banner = h('div', { class: 'banner', role: 'status', hidden: true });
  private readonly toast = h('div', { class: 'toast', role: 'status', 'aria-live': 'polite', hidden: true });
  private readonly count = h('span', { class: 'count' });
  private readonly controls = h('div', { class: 'controls', role: 'group', 'aria-label': 'Meeting controls' });
  private readonly startAudioButton = h(
    'button',
    { id: 'start-audio', type: 'button', class: 'primary', 'aria-label': 'Turn on sound', hidden: true },
    'Turn on sound',
  );
  private micButton?: HTMLButtonElement;
  private camButton?: HTMLButtonElement;
  private screenButton?: HTMLButtonElement;
  private handButton?: HTMLButtonElement;
  /** The hand as this page last heard it from LiveKit, and a change asked here on its way. */
  private handRaised = false;
  private handAsked = false;
  private endButton?: HTMLButtonElement;
  private recordButton?: HTMLButtonElement;
  private broadcast?: Broadcast;
  /** What a moderator's Record button offers. */
  private readonly recordingJob = new JobControl(() => this.room.isRecording);
  /** A Record or Stop press is on its way to the edge. */
  private recordingPressed = false;
  /** The room's live jobs as the edge last wrote them; `undefined` before its first word. */
  private jobs: RecorderJobs | undefined;
  private recorderAbsentTimer = 0;
  /** Whether the jobs above were set aside because no recorder was in the room for long. */
  private jobsSetAside = false;
  /** Shown to everyone while the room is recorded or streamed. */
  private readonly recordingBadge = h('span', { class: 'rec-badge', role: 'status', hidden: true }, 'Recording');
  private confirm?: HTMLElement;
  /** Who waits to be let in: a moderator's, in a room with a waiting room. */
  private waitingList?: WaitingList;
  /** Who is in, to mute or remove: a moderator's. */
  private people?: PeopleList;
  /** The meeting's chat, in a room that has one, and how its messages travel. */
  private chat?: Chat;
  private chatCipher?: Promise<ChatCipher>;
  private chatOpening: Promise<void> = Promise.resolve();
  /** What the backend tells the meeting. */
  private readonly notices = new Notices();
  private readonly mic: MediaToggle;
  private readonly camera: MediaToggle;
  private readonly screen: MediaToggle;
  /** Pre-join tracks not yet published, by source (camera, microphone). */
  private readonly pending = new Map<Track.Source, LocalTrack>();
  private toastTimer = 0;
  private destroyed = false;

  constructor(
    private readonly room: Room,
    private readonly session: Session,
    /** The join token in use now (it is renewed during the meeting). */
    private readonly joinToken: () => string,
    private readonly choices: JoinChoices,
    private readonly actions: ViewActions,
  ) {
    this.grid = new Grid(session.is_hidden);
    this.chatAllowed = session.may_chat;
    const lp = room.localParticipant;
    for (const track of choices.tracks) {
      if (track.source === Track.Source.Camera || track.source === Track.Source.Microphone) {
        this.pending.set(track.source, track);
      }
    }
    const render = (): void => this.renderControls();
    // Turning a device on publishes the pre-join track if it is still live (no second
    // permission prompt); otherwise the SDK opens the device afresh.
    const deviceSwitch =
      (source: Track.Source, enable: (on: boolean) => Promise<unknown>) =>
      async (on: boolean): Promise<void> => {
        const pending = this.pending.get(source);
        this.pending.delete(source);
        if (on && pending && pending.mediaStreamTrack.readyState === 'live') await lp.publishTrack(pending);
        else {
          pending?.stop();
          await enable(on);
        }
      };
    this.mic = new MediaToggle(
      () => lp.isMicrophoneEnabled,
      deviceSwitch(Track.Source.Microphone, (on) => lp.setMicrophoneEnabled(on)),
      (e) => this.say(problemText(mediaProblem(e), 'microphone')),
      render,
    );
    this.camera = new MediaToggle(
      () => lp.isCameraEnabled,
      deviceSwitch(Track.Source.Camera, (on) => lp.setCameraEnabled(on)),
      (e) => this.say(problemText(mediaProblem(e), 'camera')),
      render,
    );
    this.screen = new MediaToggle(
      () => lp.isScreenShareEnabled,
      (on) => lp.setScreenShareEnabled(on, { audio: false, selfBrowserSurface: 'exclude', surfaceSwitching: 'include' }),
      (e) => {
        // Closing the browser's picker is a choice, not an error.
        if (mediaProblem(e) !== 'denied') this.say('Screen sharing could not start.');
      },
      render,
    );
  }

  get cameraOn(): boolean {
    return this.camera.intended;
  }

  get microphoneOn(): boolean {
    return this.mic.intended;
  }

  show(): void {
    const { session, room } = this;
    const logo = hostLogo();
    this.buildControls();
    this.startAudioButton.addEventListener('click', () => {
      void room.startAudio().then(() => this.renderAudioPrompt(), () => this.renderAudioPrompt());
    });
    const header = h(
      'header',
      { class: 'room-bar', 'data-e2ee': session.e2ee_key ? 'true' : null },
      logo ? h('img', { class: 'room-logo', src: logo, alt: '', referrerpolicy: 'no-referrer' }) : null,
      h('h1', {}, session.room_title),
      h(
        'p',
        { class: 'room-meta' },
        this.count,
        session.region.name ? ` · ${session.region.name}` : '',
        session.e2ee_key ? ' · End-to-end encrypted' : '',
      ),
      this.recordingBadge,
    );
    const parts: Node[] = [header, this.banner, this.notices.el, this.grid.el, this.audioSink];
    if (session.is_admin && session.waiting_room) {
      this.waitingList = new WaitingList(this.joinToken);
      parts.push(this.waitingList.el);
      this.waitingList.start();
    }
    if (this.people) parts.push(this.people.el);
    if (this.chat) parts.push(this.chat.el);
    if (this.broadcast) parts.push(this.broadcast.panel);
    if (this.confirm) parts.push(this.confirm);
    parts.push(this.controls, this.toast);
    showScreen('room', parts);
    document.title = `${session.room_title} · edgemeet`;

    this.wire();
    this.setHand(userMetadataOf(room.localParticipant).handRaised);
    this.grid.sync(room.localParticipant);
    for (const p of room.remoteParticipants.values()) {
      for (const pub of p.trackPublications.values()) {
        if (this.refusePlain(pub, p)) continue;
        if (pub.track && pub.kind === Track.Kind.Audio) this.attachAudio(pub.track);
      }
      if (userMetadataOf(p).handRaised) this.handsUp.add(p.identity);
      this.grid.sync(p);
      this.people?.sync(p);
    }
    this.renderCount();
    this.heardPrivateChatLock();
    this.renderControls();
    this.renderAudioPrompt();
    this.heardJobs(recorderJobs(room.metadata));
    this.watchRecorderPresence();
    this.renderRecording();
  }

  /** Publishes what the user chose before joining. */
  publish(): void {
    if (this.session.is_hidden) return;
    if (this.choices.microphone && mayPublish(this.session, 'microphone')) void this.mic.set(true);
    else this.pending.get(Track.Source.Microphone)?.stop();
    if (this.choices.camera && mayPublish(this.session, 'camera')) void this.camera.set(true);
    else this.pending.get(Track.Source.Camera)?.stop();
  }

  private buildControls(): void {
    const { session } = this;
    const buttons: HTMLElement[] = [];
    if (!session.is_hidden) {
      this.micButton = controlButton('toggle-mic', 'Mute microphone', 'Mute', ICONS.mic, 'ctl-av');
      this.micButton.addEventListener('click', () => this.mic.flip());
      this.camButton = controlButton('toggle-camera', 'Stop camera', 'Stop camera', ICONS.cam, 'ctl-av');
      this.camButton.addEventListener('click', () => this.camera.flip());
      this.screenButton = controlButton('toggle-screen', 'Share screen', 'Share screen', ICONS.screen, 'ctl-share');
      // Only what the room lets this user publish is offered (LiveKit refuses the rest).
      this.micButton.hidden = !mayPublish(session, 'microphone');
      this.camButton.hidden = !mayPublish(session, 'camera');
      this.screenButton.hidden = !canShareScreen() || !mayPublish(session, 'screen_share');
      this.screenButton.addEventListener('click', () => this.screen.flip());
      this.handButton = controlButton('toggle-hand', 'Raise hand', 'Raise hand', ICONS.hand, 'ctl-hand');
      this.handButton.addEventListener('click', () => void this.flipHand());
      buttons.push(this.micButton, this.camButton, this.screenButton, this.handButton);
    }
    // An encrypted room cannot be recorded: the recorder could not read its media.
    if (session.is_admin && !session.is_hidden && !session.e2ee_key) {
      this.recordButton = controlButton('toggle-recording', 'Start recording', 'Record', ICONS.rec, 'ctl-rec');
      this.recordButton.addEventListener('click', () => this.flipRecording());
      buttons.push(this.recordButton);
      this.broadcast = new Broadcast(
        this.joinToken,
        (text) => this.say(text),
        () => this.watchRecorderPresence(),
      );
      buttons.push(this.broadcast.button);
    }
    if (session.chat && !session.is_hidden) {
      const lp = this.room.localParticipant;
      this.chatCipher = session.e2ee_key ? sealedChat(session.e2ee_key) : Promise.resolve(PLAIN_CHAT);
      const cipher = this.chatCipher;
      this.chat = new Chat(async (message) => {
        const packet = await (await cipher).seal(message, lp.identity);
        await lp.publishData(packet, {
          reliable: true,
          topic: CHAT_TOPIC,
          destinationIdentities: message.to ? [message.to] : undefined,
        });
      }, session.may_chat);
      buttons.push(this.chat.button);
    }
    if (session.is_admin && !session.is_hidden) {
      const say = (text: string): void => this.say(text);
      const waitingMessage = session.waiting_room
        ? new WaitingMessage(this.joinToken, session.waiting_room_msg ?? '', say)
        : undefined;
      this.people = new PeopleList(this.joinToken, say, session.room_locks ?? {}, waitingMessage?.el);
      buttons.push(this.people.button);
    }
    const leave = controlButton('leave', 'Leave the meeting', 'Leave', ICONS.leave, 'ctl-leave');
    leave.addEventListener('click', () => {
      leave.disabled = true;
      void this.actions.leave();
    });
    buttons.push(leave);
    if (session.is_admin && !session.is_hidden) {
      this.endButton = controlButton('end-meeting', 'End meeting for everyone', 'End meeting', ICONS.end, 'ctl-end');
      this.endButton.setAttribute('aria-expanded', 'false');
      this.endButton.setAttribute('aria-controls', 'end-confirm');
      this.endButton.addEventListener('click', () => this.openConfirm());
      buttons.push(this.endButton);
      this.confirm = this.buildConfirm();
    }
    this.controls.replaceChildren(...buttons, this.startAudioButton);
  }

  private buildConfirm(): HTMLElement {
    const error = h('p', { class: 'confirm-error', role: 'alert', hidden: true });
    const yes = h(
      'button',
      { id: 'end-meeting-confirm', type: 'button', class: 'danger', 'aria-label': 'End the meeting for everyone' },
      'End meeting',
    );
    const no = h('button', { id: 'end-meeting-cancel', type: 'button', 'aria-label': 'Cancel' }, 'Cancel');
    const panel = h(
      'div',
      { id: 'end-confirm', class: 'confirm', role: 'group', 'aria-labelledby': 'end-confirm-title', hidden: true },
      h('p', { id: 'end-confirm-title', class: 'confirm-title' }, 'End the meeting for everyone?'),
      h('p', {}, 'Everyone will be disconnected.'),
      error,
      h('div', { class: 'actions' }, no, yes),
    );
    no.addEventListener('click', () => this.closeConfirm());
    panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.closeConfirm();
    });
    yes.addEventListener('click', () => {
      yes.disabled = true;
      yes.textContent = 'Ending…';
      error.hidden = true;
      void endRoom(this.joinToken()).then((result) => {
        if (this.destroyed) return;
        if (result.ok) {
          this.actions.endedHere();
          return;
        }
        yes.disabled = false;
        yes.textContent = 'End meeting';
        error.dataset.msg = result.msg;
        error.textContent = `The meeting could not be ended: ${endFailure(result.msg)}`;
        error.hidden = false;
      });
    });
    return panel;
  }

  /** Starts or stops the recording; the answer (also "already running" or "not running",
   * when another moderator got there first) sets what the button offers next. */
  private flipRecording(): void {
    this.recordingPressed = true;
    this.renderRecording();
    const job = this.recordingJob;
    const start = !job.on;
    const mark = job.press();
    void recording(this.joinToken(), start ? 'START_RECORDING' : 'STOP_RECORDING').then((result) => {
      if (this.destroyed) return;
      this.recordingPressed = false;
      if (result.ok) job.answered(mark, start);
      else if (result.msg === 'notifications.recording-already-running') job.answered(mark, true);
      else if (result.msg === 'notifications.recording-not-running') job.answered(mark, false);
      else this.say(recordingFailure(result.msg, start));
      if (result.ok && start) this.say('Recording will start in a moment.');
      // The recorder has a re-join's time from now to come into the room.
      this.watchRecorderPresence();
      this.renderRecording();
    });
  }

  /** The edge wrote the room's live jobs (`undefined`: the metadata names none). */
  private heardJobs(jobs: RecorderJobs | undefined): void {
    if (!jobs) return;
    this.jobs = jobs;
    this.jobsSetAside = false;
    this.recordingJob.heard(jobs.recording);
    this.broadcast?.heard(jobs.rtmp);
  }

  /** While LiveKit says no recorder is in the room, waits a re-join's time, then takes the
   * jobs the edge said start or run, and this page's own presses, for ended (their recorder
   * died, or never came, before it could report); a recorder back in the room brings the
   * edge's word back. */
  private watchRecorderPresence(): void {
    window.clearTimeout(this.recorderAbsentTimer);
    if (this.room.isRecording) {
      if (this.jobsSetAside) this.heardJobs(recorderJobs(this.room.metadata));
      return;
    }
    this.recorderAbsentTimer = window.setTimeout(() => {
      if (this.destroyed || this.room.isRecording) return;
      // A press whose job never reached the room counts no more either.
      this.forgetPresses();
      if (this.jobs) {
        this.heardJobs(withoutRecorder(this.jobs));
        this.jobsSetAside = true;
      }
      this.renderRecording();
    }, RECORDER_ABSENT_MS);
  }

  /** No recorder is in the room: this page's own presses of Record and Go live count no more. */
  private forgetPresses(): void {
    this.recordingJob.forget();
    this.broadcast?.recorderLeft();
  }

  private renderRecording(): void {
    const badge = badgeText(this.jobs, this.room.isRecording);
    this.recordingBadge.hidden = badge === undefined;
    this.recordingBadge.textContent = badge ?? '';
    if (this.recordButton) showJob(this.recordButton, this.recordingJob, this.recordingPressed, RECORD_WORDS);
  }

  private openConfirm(): void {
    if (!this.confirm || !this.endButton) return;
    this.confirm.hidden = false;
    this.endButton.setAttribute('aria-expanded', 'true');
    this.confirm.querySelector<HTMLButtonElement>('#end-meeting-cancel')?.focus();
  }

  private closeConfirm(): void {
    if (!this.confirm || !this.endButton) return;
    this.confirm.hidden = true;
    this.endButton.setAttribute('aria-expanded', 'false');
    this.endButton.focus();
  }

  private wire(): void {
    const { room, grid } = this;
    const sync = (p: Participant): void => {
      if (this.destroyed) return;
      grid.sync(p);
      if (p.isLocal) this.renderControls();
      else this.people?.sync(p as RemoteParticipant);
    };
    room
      .on(RoomEvent.ParticipantConnected, (p: RemoteParticipant) => {
        if (this.destroyed) return;
        sync(p);
        this.renderCount();
        if (!p.permissions?.hidden) announce(`${p.name || p.identity} joined`);
      })
      .on(RoomEvent.ParticipantDisconnected, (p: RemoteParticipant) => {
        if (this.destroyed) return;
        grid.remove(p.identity);
        this.people?.remove(p.identity);
        this.renderCount();
        if (!p.permissions?.hidden) announce(`${p.name || p.identity} left`);
      })
      .on(RoomEvent.TrackSubscribed, (track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant) => {
        if (this.refusePlain(pub, p)) return;
        if (track.kind === Track.Kind.Audio && !this.destroyed) this.attachAudio(track);
        sync(p);
      })
      .on(RoomEvent.TrackUnsubscribed, (track: RemoteTrack, _pub: RemoteTrackPublication, p: RemoteParticipant) => {
        if (track.kind === Track.Kind.Audio) track.detach().forEach((el) => el.remove());
        sync(p);
      })
      .on(RoomEvent.TrackPublished, (pub, p) => {
        this.refusePlain(pub, p);
        sync(p);
      })
      .on(RoomEvent.TrackUnpublished, (_pub, p) => sync(p))
      .on(RoomEvent.TrackMuted, (pub, p) => {
        // Muted though this page did not ask, with the device still working (the SDK mutes a
        // microphone that ended itself): a moderator did (only the user unmutes).
        const live = pub.track?.mediaStreamTrack.readyState === 'live';
        if (p.isLocal && pub.source === Track.Source.Microphone && !this.mic.busy && live) {
          this.mic.intended = false;
          this.say('A moderator muted your microphone.');
        }
        sync(p);
      })
      .on(RoomEvent.TrackUnmuted, (_pub, p) => sync(p))
      .on(RoomEvent.LocalTrackPublished, (_pub, p) => sync(p))
      .on(RoomEvent.LocalTrackUnpublished, (_pub, p) => sync(p))
      .on(RoomEvent.ParticipantNameChanged, (_name, p) => {
        sync(p);
        this.renderCount();
      })
      .on(RoomEvent.ParticipantMetadataChanged, (_prev, p) => {
        this.heardHand(p);
        if (p.isLocal) this.heardPrivateChatLock();
        sync(p);
      })
      .on(RoomEvent.ParticipantPermissionsChanged, (_prev, p) => {
        if (p.isLocal) this.heardLocks();
        sync(p);
        this.renderCount();
      })
      .on(RoomEvent.ActiveSpeakersChanged, (speakers: Participant[]) => grid.setSpeakers(speakers))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.renderAudioPrompt())
      .on(RoomEvent.EncryptionError, () => {
        if (this.destroyed) return;
        this.banner.dataset.e2eeError = 'true';
        this.setBanner('Some encrypted media cannot be decrypted here. Reload the page if it persists.');
      })
      .on(RoomEvent.RoomMetadataChanged, (metadata: string) => {
        this.heardJobs(recorderJobs(metadata));
        this.watchRecorderPresence();
        this.renderRecording();
      })
      .on(RoomEvent.RecordingStatusChanged, (on: boolean) => {
        // Without a word from the edge, a recorder that left ended its job: Record and Go live
        // are offered again. With one, the edge's word stands (a recorder leaves for a moment
        // whenever it re-joins), unless the recorder stays away.
        if (!on && !this.jobs) this.forgetPresses();
        this.watchRecorderPresence();
        this.renderRecording();
      })
      .on(RoomEvent.DataReceived, (payload, from, _kind, topic, _encryption, identity) =>
        this.heardData(payload, topic, from?.identity ?? identity, from?.name),
      )
      .on(RoomEvent.Reconnecting, () => this.setBanner('Connection lost. Reconnecting…'))
      .on(RoomEvent.Reconnected, () => this.setBanner(''));
  }

  /** A data packet: a notice of the backend's when the server sent it. LiveKit stamps every
   * participant's packet with its sender's identity (the SDK names no participant for a
   * sender this page does not know yet), and the edge lets no hidden user, whose identity
   * LiveKit would blank, publish data: a packet without a sender is the server's. */
  private heardData(
    payload: Uint8Array,
    topic: string | undefined,
    sender: string | undefined,
    senderName: string | undefined,
  ): void {
    if (this.destroyed) return;
    if (!sender) {
      const notice = topic === NOTICE_TOPIC ? readNotice(payload) : undefined;
      if (notice) this.notices.show(notice);
      return;
    }
    // A participant's chat (in an encrypted room, only what opens with the room's key).
    const { chat, chatCipher } = this;
    if (topic !== CHAT_TOPIC || !chat || !chatCipher) return;
    // One after another, so messages show in the order they came.
    this.chatOpening = this.chatOpening
      .then(async () => {
        const message = await (await chatCipher).open(payload, sender);
        // A private message says whom it is for: LiveKit brings it to them alone.
        const mine = !message?.to || message.to === this.room.localParticipant.identity;
        if (message && mine && !this.destroyed) chat.heard(senderName || sender, message.text, Boolean(message.to));
      })
      .catch(() => undefined);
  }

  private attachAudio(track: Track): void {
    if (track.attachedElements.some((el) => el.isConnected)) return;
    const el = track.attach();
    this.audioSink.append(el);
  }

  /** Raises or lowers this user's hand; LiveKit's word on their metadata shows it. */
  private async flipHand(): Promise<void> {
    if (!this.handButton || this.handAsked) return;
    this.handAsked = true;
    this.handButton.disabled = true;
    const raise = !this.handRaised;
    const result = await raiseHand(this.joinToken(), raise);
    this.handAsked = false;
    if (this.destroyed) return;
    this.handButton.disabled = false;
    if (!result.ok) {
      this.say(raise ? 'Your hand could not be raised. Try again.' : 'Your hand could not be lowered. Try again.');
      return;
    }
    this.setHand(raise);
  }

  private setHand(raised: boolean): void {
    this.handRaised = raised;
    if (!this.handButton) return;
    setPressed(this.handButton, raised);
    this.handButton.setAttribute('aria-label', raised ? 'Lower hand' : 'Raise hand');
    const text = this.handButton.querySelector('.ctl-text');
    if (text) text.textContent = raised ? 'Lower hand' : 'Raise hand';
  }

  /** A participant's metadata changed: their hand may be up or down now. A moderator hears
   * who raised one; a user whose hand a moderator lowered is told so. */
  private heardHand(p: Participant): void {
    if (this.destroyed) return;
    const raised = userMetadataOf(p).handRaised;
    if (p.isLocal) {
      if (raised === this.handRaised) return;
      const byModerator = !raised && !this.handAsked;
      this.setHand(raised);
      if (byModerator) this.say('A moderator lowered your hand.');
      return;
    }
    if (this.session.is_admin && raised && !this.handsUp.has(p.identity)) {
      this.say(`${p.name || p.identity} raised their hand.`);
    }
    if (raised) this.handsUp.add(p.identity);
    else this.handsUp.delete(p.identity);
  }

  /** Whose hands this page has heard are up (a moderator hears each raise once). */
  private readonly handsUp = new Set<string>();

  /** Whether this user may write in the chat, as LiveKit last said. */
  private chatAllowed: boolean;

  /** LiveKit changed what this user may publish (a moderator's lock, or its lifting): offer only
   * what it allows now, and say what changed. LiveKit has already unpublished a locked source's
   * track; its pre-join track, if unused, is let go. */
  private heardLocks(): void {
    if (this.destroyed || this.session.is_hidden) return;
    const lp = this.room.localParticipant;
    const media: [Track.Source, MediaToggle, HTMLButtonElement | undefined, string][] = [
      [Track.Source.Microphone, this.mic, this.micButton, 'microphone'],
      [Track.Source.Camera, this.camera, this.camButton, 'camera'],
      [Track.Source.ScreenShare, this.screen, this.screenButton, 'screen sharing'],
    ];
    const changes: string[] = [];
    const mayChat = lp.permissions?.canPublishData ?? true;
    if (this.chat && this.chatAllowed !== mayChat) {
      this.chatAllowed = mayChat;
      this.chat.setMayWrite(mayChat);
      changes.push(mayChat ? 'A moderator turned chat back on for you.' : 'A moderator turned off chat for you.');
    }
    for (const [source, toggle, button, what] of media) {
      const allowed = mayPublishNow(lp, source) && (source !== Track.Source.ScreenShare || canShareScreen());
      if (!button || button.hidden === !allowed) continue;
      button.hidden = !allowed;
      if (!allowed) {
        toggle.cancel();
        this.pending.get(source)?.stop();
        this.pending.delete(source);
      }
      changes.push(allowed ? `A moderator unlocked your ${what}.` : `A moderator locked your ${what}.`);
    }
    if (changes.length > 0) this.say(changes.join(' '));
    this.renderControls();
  }

  private renderControls(): void {
    if (this.micButton) {
      const muted = !this.mic.on;
      setPressed(this.micButton, muted, muted ? ICONS.micOff : ICONS.mic);
    }
    if (this.camButton) {
      const stopped = !this.camera.on;
      setPressed(this.camButton, stopped, stopped ? ICONS.camOff : ICONS.cam);
    }
    if (this.screenButton) setPressed(this.screenButton, this.screen.on);
  }

  /** Who is in the meeting: the count, and whom the chat can write to privately. */
  private renderCount(): void {
    let n = this.session.is_hidden ? 0 : 1;
    const people = new Map<string, string>();
    for (const p of this.room.remoteParticipants.values()) {
      if (p.permissions?.hidden) continue;
      n++;
      people.set(p.identity, p.name || p.identity);
    }
    this.count.textContent = n === 1 ? '1 person' : `${n} people`;
    this.chat?.setRecipients(people);
  }

  /** A moderator's `privateChat` lock on this user, from their metadata (moderators are never
   * locked). */
  private heardPrivateChatLock(): void {
    if (!this.chat || this.destroyed) return;
    const { isModerator, locks } = userMetadataOf(this.room.localParticipant);
    this.chat.setMayWritePrivately(isModerator || locks.lock_private_chat !== true);
  }

  private renderAudioPrompt(): void {
    this.startAudioButton.hidden = this.room.canPlaybackAudio;
  }

  /**
   * In an encrypted room, a track published without encryption (a modified client, or one
   * that could not set it up) is neither played nor even received: LiveKit could read it, and
   * showing it under "End-to-end encrypted" would mislead. Whether it was refused.
   */
  private refusePlain(pub: RemoteTrackPublication, p: RemoteParticipant): boolean {
    if (!this.session.e2ee_key || pub.isEncrypted) return false;
    pub.setSubscribed(false);
    if (!this.destroyed) {
      this.banner.dataset.plainMedia = 'true';
      this.setBanner(`${p.name || p.identity} is sending media without encryption; it is not shown.`);
    }
    return true;
  }

  private setBanner(text: string): void {
    this.banner.textContent = text;
    this.banner.hidden = text === '';
  }

  private say(text: string): void {
    if (this.destroyed) return;
    this.toast.textContent = text;
    this.toast.hidden = false;
    window.clearTimeout(this.toastTimer);
    this.toastTimer = window.setTimeout(() => {
      this.toast.hidden = true;
    }, TOAST_MS);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.waitingList?.stop();
    this.people?.stop();
    this.notices.destroy();
    this.broadcast?.destroy();
    window.clearTimeout(this.toastTimer);
    window.clearTimeout(this.recorderAbsentTimer);
    this.grid.destroy();
    for (const el of Array.from(this.audioSink.children)) {
      (el as HTMLMediaElement).srcObject = null;
      el.remove();
    }
    for (const track of this.pending.values()) track.stop();
    this.pending.clear();
  }
}

function recordingFailure(msg: string, start: boolean): string {
  if (msg === 'notifications.recording-not-allowed') return 'This room cannot be recorded.';
  return recorderProblem(msg) ?? `The recording could not be ${start ? 'started' : 'stopped'}: ${msg}`;
}

function endFailure(msg: string): string {
  switch (msg) {
    case 'notifications.only-admin-can-end-room':
      return 'only a moderator can end the meeting.';
    case 'notifications.room-not-active':
      return 'the meeting is no longer running.';
    case 'notifications.token-expired':
      return 'your link has expired.';
    case 'network-error':
      return 'the server cannot be reached.';
    default:
      return msg;
  }
}
