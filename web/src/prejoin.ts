// The pre-join screen: a live camera preview, camera and microphone toggles, device pickers,
// a microphone level meter, and Join. Permission refused or no device is said plainly, and
// joining without them stays possible.

import {
  Room,
  createAudioAnalyser,
  createLocalTracks,
  type LocalAudioTrack,
  type LocalTrack,
  type LocalVideoTrack,
} from 'livekit-client';

import { ICONS, h, icon, initials, showScreen } from './dom';
import { cameraCapture } from './embedding';
import { mayPublish, type Session } from './session';

/** What the user chose before joining. */
export interface JoinChoices {
  camera: boolean;
  microphone: boolean;
  cameraId?: string;
  microphoneId?: string;
  /** Live preview tracks, handed over to be published as they are. */
  tracks: LocalTrack[];
}

export type MediaProblem = 'denied' | 'none' | 'busy' | 'insecure' | 'failed';

/** Why a getUserMedia/getDisplayMedia call failed, by the error's name. */
export function mediaProblem(error: unknown): MediaProblem {
  const name =
    error && typeof error === 'object' && 'name' in error ? String((error as { name: unknown }).name) : '';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
    case 'DeviceUnsupportedError':
      return 'none';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'busy';
    default:
      return 'failed';
  }
}

/** A sentence about a device problem; `what` is "camera" or "microphone". */
export function problemText(problem: MediaProblem, what: string, plural = false): string {
  const [it, is, needs] = plural ? ['them', 'are', 'need'] : ['it', 'is', 'needs'];
  switch (problem) {
    case 'denied':
      return `Access to your ${what} was blocked. You can allow ${it} in your browser's site settings.`;
    case 'none':
      return `No ${what} was found.`;
    case 'busy':
      return `Your ${what} ${is} in use by another application.`;
    case 'insecure':
      return `Your ${what} ${needs} a secure (https) connection.`;
    default:
      return `Your ${what} could not be started.`;
  }
}

type Kind = 'videoinput' | 'audioinput';

/** One capture device: what the user wants, the live track, and what went wrong. */
class Slot {
  want = true;
  track: LocalVideoTrack | LocalAudioTrack | undefined;
  problem: MediaProblem | undefined;
  deviceId = '';
  busy = false;
  devices: MediaDeviceInfo[] = [];

  constructor(readonly kind: Kind) {}

  get what(): string {
    return this.kind === 'videoinput' ? 'camera' : 'microphone';
  }

  adopt(track: LocalTrack): void {
    this.track?.stop();
    this.track = track as LocalVideoTrack | LocalAudioTrack;
    this.problem = undefined;
    this.deviceId = track.mediaStreamTrack.getSettings().deviceId || this.deviceId;
  }

  release(): void {
    this.track?.stop();
    this.track = undefined;
  }
}

function userActivated(): boolean {
  const activation = (navigator as Navigator & { userActivation?: { hasBeenActive: boolean } })
    .userActivation;
  return activation ? activation.hasBeenActive : false;
}

/** Shows the pre-join screen; resolves with the user's choices when they press Join. */
export function showPrejoin(session: Session): Promise<JoinChoices> {
  return new Promise((resolve) => {
    const cam = new Slot('videoinput');
    const mic = new Slot('audioinput');
    // Only what the room lets this user publish is offered: no device is asked for the rest.
    const mayCamera = mayPublish(session, 'camera');
    const mayMicrophone = mayPublish(session, 'microphone');
    cam.want = mayCamera;
    mic.want = mayMicrophone;
    let disposed = false;
    let starting = true;
    let shownTrack: LocalVideoTrack | undefined;

    const video = h('video', { class: 'mirrored', autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' }, initials(session.name));
    const previewState = h('p', { class: 'preview-state' });
    const preview = h('div', { class: 'preview' }, avatar, previewState);
    const meterFill = h('div', { class: 'meter-fill' });
    const meter = h('div', { class: 'meter', 'aria-hidden': 'true' }, meterFill);

    const camButton = h(
      'button',
      { id: 'toggle-camera', type: 'button', class: 'ctl ctl-av', 'aria-label': 'Stop camera', 'aria-pressed': 'false' },
      h('span', { class: 'ctl-icon' }),
      h('span', { class: 'ctl-text' }, 'Stop camera'),
    );
    const micButton = h(
      'button',
      { id: 'toggle-mic', type: 'button', class: 'ctl ctl-av', 'aria-label': 'Mute microphone', 'aria-pressed': 'false' },
      h('span', { class: 'ctl-icon' }),
      h('span', { class: 'ctl-text' }, 'Mute'),
    );
    const camSelect = h('select', { id: 'camera-select' });
    const micSelect = h('select', { id: 'mic-select' });
    const notice = h('div', { class: 'notice', role: 'status' });
    const joinButton = h(
      'button',
      { id: 'join', type: 'button', class: 'primary join', 'aria-label': 'Join the meeting' },
      'Join',
    );

    const section = h(
      'section',
      { class: 'prejoin', 'aria-labelledby': 'prejoin-title' },
      h('h1', { id: 'prejoin-title' }, session.room_title),
      h('p', { class: 'joining-as' }, 'You will join as ', h('strong', {}, session.name)),
      preview,
      meter,
      h('div', { class: 'toggles' }, micButton, camButton),
      notice,
      h(
        'div',
        { class: 'devices' },
        h('label', { hidden: !mayCamera }, h('span', {}, 'Camera'), camSelect),
        h('label', { hidden: !mayMicrophone }, h('span', {}, 'Microphone'), micSelect),
      ),
      joinButton,
    );
    camButton.hidden = !mayCamera;
    micButton.hidden = !mayMicrophone;
    showScreen('prejoin', [section]);

    // ---------------------------------------------------------------- rendering
    // Pressed = muted / camera stopped, as in the room's control bar.
    function renderToggle(button: HTMLButtonElement, slot: Slot, on: string, off: string): void {
      button.setAttribute('aria-pressed', String(!slot.want));
      button.querySelector('.ctl-icon')?.replaceChildren(icon(slot.want ? on : off));
    }

    function renderSelect(select: HTMLSelectElement, slot: Slot): void {
      const usable = slot.devices.filter((d) => d.deviceId !== '');
      const options = usable.map((d, i) => {
        const label = d.label || `${slot.kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
        return h('option', { value: d.deviceId }, label);
      });
      if (options.length === 0) {
        options.push(h('option', { value: '' }, slot.problem ? 'Not available' : 'Default'));
      }
      select.replaceChildren(...options);
      select.disabled = usable.length === 0;
      if (slot.deviceId && usable.some((d) => d.deviceId === slot.deviceId)) select.value = slot.deviceId;
    }

    function render(): void {
      if (disposed) return;
      renderToggle(camButton, cam, ICONS.cam, ICONS.camOff);
      renderToggle(micButton, mic, ICONS.mic, ICONS.micOff);

      const showing = cam.want ? (cam.track as LocalVideoTrack | undefined) : undefined;
      if (showing !== shownTrack) {
        shownTrack?.detach(video);
        shownTrack = showing;
        showing?.attach(video);
      }
      if (showing) {
        if (!video.isConnected) preview.prepend(video);
        preview.dataset.video = 'true';
        previewState.textContent = '';
      } else {
        video.remove();
        delete preview.dataset.video;
        previewState.textContent = starting || cam.busy ? 'Starting camera…' : 'Camera is off';
      }
      meter.hidden = !(mic.track && mic.want);

      const lines: string[] = [];
      if (starting) {
        lines.push('Asking for your camera and microphone…');
      } else if (cam.problem && cam.problem === mic.problem && cam.problem !== 'none') {
        lines.push(problemText(cam.problem, 'camera and microphone', true));
      } else {
        if (cam.problem) lines.push(problemText(cam.problem, 'camera'));
        if (mic.problem) lines.push(problemText(mic.problem, 'microphone'));
      }
      if (!starting && (cam.problem || mic.problem)) lines.push('You can still join without them.');
      notice.replaceChildren(...lines.map((l) => h('p', {}, l)));
      notice.hidden = lines.length === 0;

      renderSelect(camSelect, cam);
      renderSelect(micSelect, mic);
    }

    // ---------------------------------------------------------------- microphone level
    let analyser: ReturnType<typeof createAudioAnalyser> | undefined;
    let analysedTrack: LocalAudioTrack | undefined;
    let frame = 0;

    function stopMeter(): void {
      cancelAnimationFrame(frame);
      frame = 0;
      void analyser?.cleanup().catch(() => undefined);
      analyser = undefined;
      analysedTrack = undefined;
      meterFill.style.transform = 'scaleX(0)';
    }

    function syncMeter(): void {
      const track = mic.want ? (mic.track as LocalAudioTrack | undefined) : undefined;
      if (track === analysedTrack) return;
      stopMeter();
      // An AudioContext made before the user touched the page would start suspended (and
      // Chrome would warn); wait for the first gesture instead.
      if (!track || disposed || !userActivated()) return;
      try {
        analyser = createAudioAnalyser(track, { cloneTrack: false });
      } catch {
        return; // no Web Audio: no meter
      }
      analysedTrack = track;
      const tick = (): void => {
        if (!analyser) return;
        const level = Math.min(1, analyser.calculateVolume() * 1.6);
        meterFill.style.transform = `scaleX(${level.toFixed(3)})`;
        frame = requestAnimationFrame(tick);
      };
      frame = requestAnimationFrame(tick);
    }

    const onGesture = (): void => {
      // Runs after the click handlers, once the gesture counts as activation.
      window.setTimeout(syncMeter, 0);
    };
    document.addEventListener('pointerdown', onGesture, true);
    document.addEventListener('keydown', onGesture, true);

    // ---------------------------------------------------------------- devices
    async function refreshDevices(): Promise<void> {
      try {
        const all = await Room.getLocalDevices(undefined, false);
        cam.devices = all.filter((d) => d.kind === 'videoinput');
        mic.devices = all.filter((d) => d.kind === 'audioinput');
      } catch {
        cam.devices = [];
        mic.devices = [];
      }
    }

    async function start(slot: Slot): Promise<void> {
      slot.busy = true;
      render();
      try {
        const tracks = await createLocalTracks(
          slot.kind === 'videoinput'
            ? { video: cameraCapture(slot.deviceId), audio: false }
            : { audio: slot.deviceId ? { deviceId: slot.deviceId } : true, video: false },
        );
        if (disposed || !slot.want) {
          tracks.forEach((t) => t.stop());
          return;
        }
        slot.adopt(tracks[0]);
      } catch (error) {
        slot.problem = mediaProblem(error);
        slot.want = false;
        slot.release();
      } finally {
        slot.busy = false;
      }
      await refreshDevices();
      render();
      syncMeter();
    }

    /** The first request: both devices in one permission prompt where possible. */
    async function startBoth(): Promise<void> {
      if (!navigator.mediaDevices?.getUserMedia) {
        for (const slot of [cam, mic]) {
          slot.want = false;
          slot.problem = 'insecure';
        }
        return;
      }
      await refreshDevices();
      const listed = cam.devices.length + mic.devices.length > 0;
      for (const slot of [cam, mic]) {
        if (listed && slot.devices.length === 0) {
          slot.want = false;
          slot.problem = 'none';
        }
      }
      if (!cam.want && !mic.want) return;
      try {
        const tracks = await createLocalTracks({ video: cam.want && cameraCapture(), audio: mic.want });
        if (disposed) {
          tracks.forEach((t) => t.stop());
          return;
        }
        for (const track of tracks) (track.kind === 'video' ? cam : mic).adopt(track);
      } catch (error) {
        const problem = mediaProblem(error);
        if (problem === 'denied') {
          for (const slot of [cam, mic]) {
            if (slot.want) {
              slot.want = false;
              slot.problem = 'denied';
            }
          }
        } else {
          // One device may work alone (a missing or busy other one fails the pair).
          for (const slot of [cam, mic]) if (slot.want && !disposed) await start(slot);
        }
      }
      await refreshDevices();
    }

    const onDeviceChange = (): void => {
      void refreshDevices().then(render);
    };
    navigator.mediaDevices?.addEventListener?.('devicechange', onDeviceChange);

    // ---------------------------------------------------------------- controls
    function toggle(slot: Slot): void {
      if (slot.busy || starting) return;
      if (slot.want) {
        slot.want = false;
        slot.release();
        render();
        syncMeter();
      } else {
        slot.want = true;
        slot.problem = undefined;
        void start(slot);
      }
    }

    function choose(slot: Slot, select: HTMLSelectElement): void {
      if (!select.value || select.value === slot.deviceId) return;
      slot.deviceId = select.value;
      if (slot.want && !slot.busy && !starting) {
        slot.release();
        void start(slot);
      }
    }

    camButton.addEventListener('click', () => toggle(cam));
    micButton.addEventListener('click', () => toggle(mic));
    camSelect.addEventListener('change', () => choose(cam, camSelect));
    micSelect.addEventListener('change', () => choose(mic, micSelect));

    joinButton.addEventListener('click', () => {
      if (disposed) return;
      disposed = true;
      stopMeter();
      document.removeEventListener('pointerdown', onGesture, true);
      document.removeEventListener('keydown', onGesture, true);
      navigator.mediaDevices?.removeEventListener?.('devicechange', onDeviceChange);
      shownTrack?.detach(video);
      shownTrack = undefined;
      const tracks: LocalTrack[] = [];
      for (const slot of [cam, mic]) {
        if (slot.want && slot.track) tracks.push(slot.track);
        else slot.release();
      }
      resolve({
        camera: cam.want,
        microphone: mic.want,
        cameraId: cam.deviceId || undefined,
        microphoneId: mic.deviceId || undefined,
        tracks,
      });
    });

    render();
    void startBoth().finally(() => {
      starting = false;
      render();
      syncMeter();
    });
  });
}
