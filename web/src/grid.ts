// The video grid: one tile per visible participant's camera (video, or initials while the
// camera is off; name; a muted-microphone mark), and a large tile for each screen share.

import { Track, type Participant } from 'livekit-client';

import { ICONS, h, icon, initials } from './dom';
import { userMetadataOf } from './locks';

type Source = 'camera' | 'screen_share';

function displayName(p: Participant): string {
  return p.name || p.identity;
}

class Tile {
  readonly el: HTMLDivElement;
  private readonly avatar: HTMLDivElement;
  private readonly nameEl: HTMLSpanElement;
  private readonly micOff: HTMLSpanElement | null;
  private readonly hand: HTMLSpanElement | null;
  private video: HTMLVideoElement | null = null;
  private track: Track | undefined;

  constructor(
    identity: string,
    readonly source: Source,
    readonly local: boolean,
  ) {
    this.avatar = h('div', { class: 'avatar', 'aria-hidden': 'true' });
    this.nameEl = h('span', { class: 'name' });
    this.micOff =
      source === 'camera'
        ? h('span', { class: 'mic-off', role: 'img', 'aria-label': 'Microphone off', hidden: true }, icon(ICONS.micOff))
        : null;
    this.hand =
      source === 'camera'
        ? h('span', { class: 'hand', role: 'img', 'aria-label': 'Hand raised', hidden: true }, icon(ICONS.hand))
        : null;
    this.el = h(
      'div',
      {
        class: 'tile',
        role: 'group',
        'data-identity': identity,
        'data-source': source,
        'data-local': local ? 'true' : null,
      },
      this.avatar,
      h('div', { class: 'nameplate' }, this.hand, this.micOff, this.nameEl),
    );
  }

  setName(name: string): void {
    const label =
      this.source === 'screen_share'
        ? this.local
          ? 'Your screen'
          : `${name} (screen)`
        : this.local
          ? `${name} (you)`
          : name;
    if (this.nameEl.textContent !== label) {
      this.nameEl.textContent = label;
      this.el.setAttribute('aria-label', label);
      this.avatar.textContent = initials(name);
    }
  }

  setVideo(track: Track | undefined): void {
    if (track === this.track) return;
    if (this.track && this.video) this.track.detach(this.video);
    this.track = track;
    if (!track) {
      this.video?.remove();
      this.video = null;
      delete this.el.dataset.video;
      return;
    }
    if (!this.video) {
      const mirrored = this.local && this.source === 'camera';
      this.video = h('video', { autoplay: true, playsinline: true, muted: true, class: mirrored ? 'mirrored' : null });
      this.video.muted = true;
      this.el.prepend(this.video);
    }
    track.attach(this.video);
    this.el.dataset.video = 'true';
  }

  setMuted(muted: boolean): void {
    if (this.micOff) this.micOff.hidden = !muted;
    if (muted) this.el.dataset.muted = 'true';
    else delete this.el.dataset.muted;
  }

  setHand(raised: boolean): void {
    if (this.hand) this.hand.hidden = !raised;
    if (raised) this.el.dataset.hand = 'raised';
    else delete this.el.dataset.hand;
  }

  setSpeaking(speaking: boolean): void {
    if (speaking) this.el.dataset.speaking = 'true';
    else delete this.el.dataset.speaking;
  }

  destroy(): void {
    this.setVideo(undefined);
    this.el.remove();
  }
}

export class Grid {
  readonly el: HTMLElement;
  private readonly tiles = new Map<string, Tile>();
  private speaking = new Set<string>();

  /** `hideLocal`: a hidden user gets no tile of their own. */
  constructor(private readonly hideLocal: boolean) {
    this.el = h('section', { class: 'grid', 'aria-label': 'Participants' });
  }

  private tile(identity: string, source: Source, local: boolean): Tile {
    const key = `${source}\u0000${identity}`;
    let tile = this.tiles.get(key);
    if (!tile) {
      tile = new Tile(identity, source, local);
      this.tiles.set(key, tile);
      this.el.append(tile.el);
      if (source === 'camera') tile.setSpeaking(this.speaking.has(identity));
    }
    return tile;
  }

  private drop(identity: string, source: Source): void {
    const key = `${source}\u0000${identity}`;
    this.tiles.get(key)?.destroy();
    this.tiles.delete(key);
  }

  /** Brings a participant's tiles in line with their tracks. */
  sync(p: Participant): void {
    const local = p.isLocal;
    if ((local && this.hideLocal) || (!local && p.permissions?.hidden)) {
      this.remove(p.identity);
      return;
    }
    const name = displayName(p);

    const camera = this.tile(p.identity, 'camera', local);
    camera.setName(name);
    const camPub = p.getTrackPublication(Track.Source.Camera);
    camera.setVideo(camPub && !camPub.isMuted ? camPub.videoTrack : undefined);
    const micPub = p.getTrackPublication(Track.Source.Microphone);
    camera.setMuted(!micPub || micPub.isMuted);
    camera.setHand(userMetadataOf(p).handRaised);

    const screenPub = p.getTrackPublication(Track.Source.ScreenShare);
    if (screenPub) {
      const screen = this.tile(p.identity, 'screen_share', local);
      screen.setName(name);
      screen.setVideo(screenPub.isMuted ? undefined : screenPub.videoTrack);
    } else {
      this.drop(p.identity, 'screen_share');
    }
    this.layout();
  }

  remove(identity: string): void {
    this.drop(identity, 'camera');
    this.drop(identity, 'screen_share');
    this.layout();
  }

  setSpeakers(speakers: Participant[]): void {
    this.speaking = new Set(speakers.map((p) => p.identity));
    for (const tile of this.tiles.values()) {
      if (tile.source === 'camera') {
        tile.setSpeaking(this.speaking.has(tile.el.dataset.identity ?? ''));
      }
    }
  }

  private layout(): void {
    let cameras = 0;
    let screens = 0;
    for (const tile of this.tiles.values()) {
      if (tile.source === 'camera') cameras++;
      else screens++;
    }
    this.el.dataset.count = String(cameras);
    if (cameras >= 3) this.el.dataset.many = 'true';
    else delete this.el.dataset.many;
    if (screens > 0) this.el.dataset.presenting = 'true';
    else delete this.el.dataset.presenting;
  }

  destroy(): void {
    for (const tile of this.tiles.values()) tile.destroy();
    this.tiles.clear();
  }
}
