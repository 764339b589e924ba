// The page inside another site's page. plugNmeet's CMS plugins (Moodle, WordPress, Joomla) ask
// the edge for its client files (`/auth/getClientFiles`), load them into a page of their own
// that has `<div id="plugNmeet-app">` and `window.plugNmeetConfig = { serverUrl, … }` (older
// ones set `window.PLUG_N_MEET_SERVER_URL`), and send users to that page with `?access_token=`.
// There the page mounts itself into that element, calls the edge at the server URL (the edge
// lets any origin call `/api/*`: the join token in `Authorization` is the only credential),
// leaves the address bar to the host site, which may need the token in it on a reload (Moodle
// does), and asks the browser to send no `Referer` from that page (its address holds the token).
// The plugin's design and media settings apply there, much as plugNmeet's client applies them.

import {
  AudioPresets,
  VideoPresets,
  type AudioPreset,
  type TrackPublishDefaults,
  type VideoCaptureOptions,
  type VideoCodec,
  type VideoPreset,
} from 'livekit-client';

/** The element plugNmeet's plugins give the client. */
const HOST_ELEMENT_ID = 'plugNmeet-app';

let embedded = false;

/** What the plugins' pages set: `plugNmeetConfig` (current plugins) or globals (older ones). */
interface HostConfig {
  plugNmeetConfig?: {
    serverUrl?: unknown;
    designCustomization?: unknown;
    customLogo?: unknown;
    enableDynacast?: unknown;
    enableSimulcast?: unknown;
    videoCodec?: unknown;
    defaultWebcamResolution?: unknown;
    defaultAudioPreset?: unknown;
    stopMicTrackOnMute?: unknown;
  };
  PLUG_N_MEET_SERVER_URL?: unknown;
  DESIGN_CUSTOMIZATION?: unknown;
  CUSTOM_LOGO?: unknown;
  ENABLE_DYNACAST?: unknown;
  ENABLE_SIMULCAST?: unknown;
  VIDEO_CODEC?: unknown;
  DEFAULT_WEBCAM_RESOLUTION?: unknown;
  DEFAULT_AUDIO_PRESET?: unknown;
  STOP_MIC_TRACK_ON_MUTE?: unknown;
}

type CurrentConfig = NonNullable<HostConfig['plugNmeetConfig']>;

const hostGlobals = (): HostConfig => window as unknown as HostConfig;
const hostConfig = (): CurrentConfig => hostGlobals().plugNmeetConfig ?? {};

/** A plugin setting: `plugNmeetConfig[name]`, else older plugins' global `legacy`. */
function hostSetting(name: keyof CurrentConfig, legacy: Exclude<keyof HostConfig, 'plugNmeetConfig'>): unknown {
  return hostConfig()[name] ?? hostGlobals()[legacy];
}

/** `value` as an http(s) URL (resolved against `base` if given), or `null`. */
function httpUrl(value: unknown, base?: string): URL | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  try {
    const url = new URL(value.trim(), base);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
  } catch {
    return null;
  }
}

/**
 * Mounts the page into the host site's `#plugNmeet-app` when this is not the edge's own page
 * (which has `#app`): adds the page's root (`#app`) and its live region there. Call once,
 * before anything is shown.
 */
export function mountInHostPage(): void {
  if (document.getElementById('app')) return;
  const host = document.getElementById(HOST_ELEMENT_ID);
  if (!host) return;
  embedded = true;
  const app = document.createElement('main');
  app.id = 'app';
  app.dataset.screen = 'loading';
  app.setAttribute('aria-busy', 'true');
  const announcer = document.createElement('div');
  announcer.id = 'announcer';
  announcer.className = 'visually-hidden';
  announcer.setAttribute('aria-live', 'polite');
  announcer.setAttribute('aria-atomic', 'true');
  host.replaceChildren(app, announcer);
  const referrer = document.createElement('meta');
  referrer.name = 'referrer';
  referrer.content = 'no-referrer';
  document.head.append(referrer);
}

/** Whether the page runs inside another site's page (see [`mountInHostPage`]). */
export function isEmbedded(): boolean {
  return embedded;
}

/** An absolute http(s) URL without its trailing slashes, or `null`. */
function serverUrl(value: unknown): string | null {
  const url = httpUrl(value);
  return url && `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Where the edge's API is: the same origin on the edge's own page; inside a host page, the
 * server URL the plugin configured, else the origin this script came from (the edge serves it).
 */
export function apiBase(): string {
  if (!embedded) return '';
  return (
    serverUrl(hostConfig().serverUrl) ??
    serverUrl(hostGlobals().PLUG_N_MEET_SERVER_URL) ??
    new URL(import.meta.url).origin
  );
}

/**
 * The plugin's design customization (`plugNmeetConfig.designCustomization`, older plugins'
 * `window.DESIGN_CUSTOMIZATION`; an object or its JSON; the keys plugNmeet's client reads, but
 * for the button and icon colors of its own layout). Only from the host page's own script,
 * never from the link: colors must be CSS colors and pictures and style sheets http(s) URLs,
 * anything else is ignored. `right_side_bg_color` is the old name of `side_panel_bg_color`.
 */
interface DesignCustomization {
  primary_color?: unknown;
  background_color?: unknown;
  background_image?: unknown;
  header_bg_color?: unknown;
  footer_bg_color?: unknown;
  side_panel_bg_color?: unknown;
  right_side_bg_color?: unknown;
  custom_css_url?: unknown;
  custom_logo?: unknown;
}

/** The logo the plugin configured, shown in the room's header; `null` for none. */
let logoUrl: string | null = null;

function designCustomization(): DesignCustomization | null {
  let design = hostSetting('designCustomization', 'DESIGN_CUSTOMIZATION');
  if (typeof design === 'string') {
    try {
      design = JSON.parse(design);
    } catch {
      return null;
    }
  }
  return design && typeof design === 'object' ? (design as DesignCustomization) : null;
}

function color(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' && CSS.supports('color', value.trim())
    ? value.trim()
    : null;
}

/** A picture's or style sheet's http(s) URL (relative to the host page), or `null`. */
function webUrl(value: unknown): string | null {
  return httpUrl(value, window.location.href)?.href ?? null;
}

/**
 * Applies the plugin's design customization inside a host page: colors as the page's CSS
 * variables (`--accent`, `--bg`, `--header-bg`, `--footer-bg`, `--side-panel-bg`), the
 * background picture, the plugin's style sheet after the page's own, and the logo for
 * [`hostLogo`]. Nothing on the edge's own page.
 */
export function applyHostDesign(): void {
  if (!embedded) return;
  const design = designCustomization();
  logoUrl = webUrl(design?.custom_logo) ?? configuredLogo();
  if (!design) return;
  const root = document.documentElement.style;
  const colors: [string, unknown][] = [
    ['--accent', design.primary_color],
    ['--bg', design.background_color],
    ['--header-bg', design.header_bg_color],
    ['--footer-bg', design.footer_bg_color],
    ['--side-panel-bg', design.side_panel_bg_color ?? design.right_side_bg_color],
  ];
  for (const [name, value] of colors) {
    const checked = color(value);
    if (checked) root.setProperty(name, checked);
  }
  const background = webUrl(design.background_image);
  if (background) root.setProperty('--bg-image', `url("${cssStringSafe(background)}")`);
  const css = webUrl(design.custom_css_url);
  if (css) {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.referrerPolicy = 'no-referrer';
    link.href = css;
    document.head.append(link);
  }
}

/** `url` with what could end a CSS string (a quote, a backslash, a line break; the host part of
 * a URL may keep a quote) percent-encoded. */
function cssStringSafe(url: string): string {
  return url.replace(/["\\\n\r\f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The logo the plugin set outside the design: `plugNmeetConfig.customLogo` (a URL, or
 * `{main_logo_dark, main_logo_light}` as Moodle's plugin sets it; this page is dark), or older
 * plugins' `window.CUSTOM_LOGO`. */
function configuredLogo(): string | null {
  const logo = hostSetting('customLogo', 'CUSTOM_LOGO');
  if (logo && typeof logo === 'object') {
    const { main_logo_dark: dark, main_logo_light: light } = logo as Record<string, unknown>;
    return webUrl(dark) ?? webUrl(light);
  }
  return webUrl(logo);
}

/** The logo the plugin configured (see [`applyHostDesign`]), `null` for none. */
export function hostLogo(): string | null {
  return logoUrl;
}

/** How this page publishes: livekit-client's defaults, or the plugin's media settings inside a
 * host page. Unset and unknown values keep the defaults. */
export interface HostMedia {
  dynacast: boolean;
  /** The plugin's publish settings, laid over livekit-client's defaults (no `undefined` keys:
   * they would replace those). */
  publishDefaults: TrackPublishDefaults;
}

function flag(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 1 || value === '1') return true;
  if (value === 'false' || value === 0 || value === '0') return false;
  return null;
}

function presetOf<T>(presets: Record<string, T>, name: unknown): T | null {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(presets, name) ? presets[name] : null;
}

const VIDEO_CODECS: readonly VideoCodec[] = ['vp8', 'h264', 'vp9', 'av1'];

/** The plugin's `enableDynacast`, `enableSimulcast`, `videoCodec`, `defaultAudioPreset`
 * (`telephone` … `musicHighQualityStereo`) and `stopMicTrackOnMute`, the settings plugNmeet's
 * client reads (booleans also as `"true"` and `"false"`; the camera's resolution is
 * [`cameraCapture`]'s). In an `encrypted` room the codec stays livekit-client's VP8: its
 * encryption worker refuses AV1, and it adds no fallback codec there, so a viewer who cannot
 * decode the configured one would see nothing. */
export function hostMedia(encrypted = false): HostMedia {
  const media: HostMedia = { dynacast: true, publishDefaults: {} };
  if (!embedded) return media;
  media.dynacast = flag(hostSetting('enableDynacast', 'ENABLE_DYNACAST')) ?? true;
  const simulcast = flag(hostSetting('enableSimulcast', 'ENABLE_SIMULCAST'));
  if (simulcast !== null) media.publishDefaults.simulcast = simulcast;
  const codec = hostSetting('videoCodec', 'VIDEO_CODEC');
  if (!encrypted && VIDEO_CODECS.includes(codec as VideoCodec)) {
    media.publishDefaults.videoCodec = codec as VideoCodec;
  }
  const audio = presetOf<AudioPreset>(AudioPresets, hostSetting('defaultAudioPreset', 'DEFAULT_AUDIO_PRESET'));
  if (audio) media.publishDefaults.audioPreset = audio;
  const stopMic = flag(hostSetting('stopMicTrackOnMute', 'STOP_MIC_TRACK_ON_MUTE'));
  if (stopMic !== null) media.publishDefaults.stopMicTrackOnMute = stopMic;
  return media;
}

/** The camera's capture options: `deviceId` if chosen, and inside a host page the plugin's
 * `defaultWebcamResolution` (`h90` … `h2160`, LiveKit's presets). */
export function cameraCapture(deviceId?: string): VideoCaptureOptions {
  const preset = embedded
    ? presetOf<VideoPreset>(VideoPresets, hostSetting('defaultWebcamResolution', 'DEFAULT_WEBCAM_RESOLUTION'))
    : null;
  return { ...(deviceId ? { deviceId } : {}), ...(preset ? { resolution: preset.resolution } : {}) };
}
