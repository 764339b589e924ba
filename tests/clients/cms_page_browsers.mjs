// Drives the meeting embedded in a CMS plugin's page, in headless Debian Chromium, for
// tests/web.rs:
//
//   node cms_page_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": EDGE_URL, "js": [FILE], "css": [FILE] (from /auth/getClientFiles),
//             "moderator": TOKEN, "moderatorIdentity": ID, "guest": TOKEN, "guestIdentity": ID,
//             "livekitHttp": URL, "livekitRoom": NAME, "livekitToken": ADMIN_TOKEN, "shots": DIR}
// A stand-in for the CMS site (named as such: Moodle and WordPress cannot run here) serves, on
// another origin than the edge's, the page plugNmeet's Moodle plugin (conference.php) and
// WordPress plugin render: a <link> per CSS file and a <script> per JS file under
// `<server>/assets/{css,js}/` (`main-module.*` as an ES module, the rest deferred),
// `window.plugNmeetConfig = {serverUrl, staticAssetsPath, …}`, and `<div id="plugNmeet-app">`;
// users reach it as `/mod/plugnmeet/conference.php?id=…&access_token=…`, and the plugin's design
// settings (colors, background picture, style sheet; the logo as Moodle's `customLogo`) and
// media settings (a 180p camera: LiveKit is asked what it receives) come with the config. The guest gets the page as plugins before late 2025 rendered it: every file
// a classic deferred script, `window.PLUG_N_MEET_SERVER_URL`, `window.CUSTOM_LOGO` and
// `window.DEFAULT_WEBCAM_RESOLUTION` (90p), and the
// server URL saved with a trailing slash (so `<server>//assets/…`). Both users join the
// encrypted meeting there and play each other's video (decrypted in the page's worker); the
// guest reloads the page and is back in; the moderator ends the meeting. Prints one JSON line
// with what it saw; screenshots go to DIR.
import { createServer } from "node:http";

import { enterRoom, playsRemoteVideo, runDriver, screen } from "./browsers.mjs";

/** Escapes `text` for an HTML attribute. */
const attr = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The plugin's design settings, as the plugins put them in the config (one of them bad). */
export const DESIGN = {
  primary_color: "#c2185b",
  background_color: "rgb(20, 40, 60)",
  header_bg_color: "#004d40",
  footer_bg_color: "rgb(74, 20, 140)",
  side_panel_bg_color: "red;}body{display:none",
  background_image: "/background.svg",
  custom_css_url: "/custom.css",
};

/** What the CMS site serves beside the page: the design's pictures and style sheet. */
const CMS_FILES = {
  "/logo.svg": ["image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="20"><rect width="80" height="20" fill="#ffb300"/></svg>'],
  "/background.svg": ["image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8" fill="#233"/></svg>'],
  "/custom.css": ["text/css", ".room-bar h1 { letter-spacing: 3px; }"],
};

/** The page as plugNmeet's Moodle plugin wrote it before its `plugNmeetConfig` (late 2025):
 * classic deferred scripts, the settings as globals, the server URL as saved (a trailing
 * slash kept). */
function legacyConferencePage(plan, origin, title) {
  const server = `${plan.base}/`;
  const assets = `${server}/assets`;
  const css = plan.css.map((f) => `<link href="${attr(`${assets}/css/${f}`)}" rel="stylesheet" />`);
  const js = plan.js.map((f) => `<script src="${attr(`${assets}/js/${f}`)}" defer="defer"></script>`);
  const globals = [
    `window.PLUG_N_MEET_SERVER_URL = ${JSON.stringify(server)};`,
    `window.STATIC_ASSETS_PATH = ${JSON.stringify(assets)};`,
    `window.CUSTOM_LOGO = ${JSON.stringify(`${origin}/logo.svg`)};`,
    `window.DEFAULT_WEBCAM_RESOLUTION = "h90";`,
  ];
  return `<!doctype html>
<html lang="en">
<head>
    <meta charset="UTF-8"/>
    <title>${attr(title)}</title>
    ${css.join("\n    ")}
    ${js.join("\n    ")}
    <script>${globals.join("")}</script>
</head>
<body>
<div id="plugNmeet-app"></div>
</body>
</html>`;
}

/** The page as plugNmeet's Moodle plugin writes it (conference.php), for `title`. */
function conferencePage(plan, origin, title) {
  const assets = `${plan.base}/assets`;
  const css = plan.css.map((f) => `<link href="${attr(`${assets}/css/${f}`)}" rel="stylesheet" />`);
  const js = plan.js.map((f) =>
    f.startsWith("main-module.")
      ? `<script src="${attr(`${assets}/js/${f}`)}" type="module"></script>`
      : `<script src="${attr(`${assets}/js/${f}`)}" defer="defer"></script>`,
  );
  const config = {
    serverUrl: plan.base,
    staticAssetsPath: assets,
    enableDynacast: true,
    enableSimulcast: false,
    videoCodec: "vp8",
    defaultWebcamResolution: "h180",
    defaultScreenShareResolution: "h1080fps15",
    defaultAudioPreset: "music",
    stopMicTrackOnMute: false,
    designCustomization: Object.fromEntries(
      Object.entries(DESIGN).map(([k, v]) => [k, v.startsWith("/") ? `${origin}${v}` : v]),
    ),
    customLogo: { main_logo_light: `${origin}/logo.svg`, main_logo_dark: `${origin}/logo.svg` },
  };
  return `<!doctype html>
<html lang="en">
<head>
    <meta charset="UTF-8"/>
    <meta name="viewport" content="width=device-width,initial-scale=1"/>
    <title>${attr(title)}</title>
    ${css.join("\n    ")}
    ${js.join("\n    ")}
    <script>window.plugNmeetConfig = JSON.parse(${JSON.stringify(JSON.stringify(config))});</script>
</head>
<body>
<div id="plugNmeet-app"></div>
</body>
</html>`;
}

/** Starts the CMS site on an ephemeral port of `localhost`; its origin. */
async function startCmsSite(plan, requests) {
  let origin = "";
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    requests.push(url.pathname);
    if (url.pathname === "/mod/plugnmeet/conference.php" && url.searchParams.get("access_token")) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(conferencePage(plan, origin, "Course 101: weekly seminar"));
    } else if (url.pathname === "/legacy/conference.php" && url.searchParams.get("access_token")) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(legacyConferencePage(plan, origin, "Course 101: weekly seminar"));
    } else if (CMS_FILES[url.pathname]) {
      const [type, body] = CMS_FILES[url.pathname];
      res.writeHead(200, { "Content-Type": type }).end(body);
    } else if (url.pathname === "/favicon.ico") {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://localhost:${server.address().port}`;
  return { server, origin };
}

await runDriver("cms-failure", async ({ plan, browser, seen, step, consoleError, markEnding }) => {
  const requests = [];
  const { server, origin } = await startCmsSite(plan, requests);
  seen.cmsOrigin = origin;
  try {
    /** Opens the CMS's conference page at `path` for `token` in a new browser context. */
    async function openConference(name, token, path = "/mod/plugnmeet/conference.php") {
      const context = await browser.newContext({
        permissions: ["camera", "microphone"],
        viewport: { width: 1280, height: 800 },
      });
      const browserPage = await context.newPage();
      browserPage.on("console", (m) => {
        if (m.type() === "error") consoleError(`${name}: ${m.text()}`);
      });
      browserPage.on("pageerror", (e) => consoleError(`${name}: ${e.message}`));
      const session = browserPage.waitForResponse((r) => r.url().endsWith("/api/session"));
      await browserPage.goto(`${origin}${path}?id=7&access_token=${encodeURIComponent(token)}`);
      seen[`${name}SessionUrl`] = (await session).url();
      return browserPage;
    }

    const moderator = await openConference("moderator", plan.moderator);
    await screen(moderator, "prejoin");
    seen.joinButtonColor = await moderator.$eval("#join", (b) => getComputedStyle(b).backgroundColor);
    await enterRoom(moderator);
    // The plugin's design, as the page shows it.
    await moderator.waitForFunction(() => document.querySelector(".room-logo")?.complete);
    seen.design = await moderator.evaluate(() => {
      const style = (selector) => getComputedStyle(document.querySelector(selector));
      return {
        headerColor: style(".room-bar").backgroundColor,
        footerColor: style(".controls").backgroundColor,
        bodyColor: style("body").backgroundColor,
        bodyImage: style("body").backgroundImage,
        titleLetterSpacing: style(".room-bar h1").letterSpacing,
        logoWidth: document.querySelector(".room-logo")?.naturalWidth ?? 0,
        sidePanelColor: getComputedStyle(document.documentElement).getPropertyValue("--side-panel-bg"),
        bodyShown: style("body").display !== "none",
      };
    });
    const guest = await openConference("guest", plan.guest, "/legacy/conference.php");
    await enterRoom(guest);
    seen.guestLogoWidth = await guest.evaluate(async () => {
      const logo = document.querySelector(".room-logo");
      if (!logo) return 0;
      await logo.decode().catch(() => {});
      return logo.naturalWidth;
    });
    step("both in the room, in the CMS's page");

    seen.pageOrigin = await moderator.evaluate(() => window.location.origin);
    seen.mountedInHostElement = await moderator.evaluate(
      () => document.querySelector("#plugNmeet-app > #app") !== null,
    );
    seen.urlKeepsToken = await moderator.evaluate(() =>
      new URLSearchParams(window.location.search).has("access_token"),
    );
    await playsRemoteVideo(moderator, plan.guestIdentity);
    await playsRemoteVideo(guest, plan.moderatorIdentity);
    seen.encrypted = await moderator.$eval(".room-bar", (el) => el.dataset.e2ee === "true");
    seen.moderatorTiles = await moderator.$$eval(".tile", (tiles) => tiles.length);
    await moderator.screenshot({ path: `${plan.shots}/c1-cms-room.png` });
    // What LiveKit receives from each camera: the plugin's media settings, or the defaults.
    const res = await fetch(`${plan.livekitHttp}/twirp/livekit.RoomService/ListParticipants`, {
      method: "POST",
      headers: { Authorization: `Bearer ${plan.livekitToken}`, "Content-Type": "application/json" },
      body: JSON.stringify({ room: plan.livekitRoom }),
    });
    seen.cameras = Object.fromEntries(
      ((await res.json()).participants || []).flatMap((p) =>
        (p.tracks || [])
          .filter((t) => t.source === "CAMERA")
          .map((t) => [p.identity, { width: t.width, height: t.height }]),
      ),
    );
    step("each decrypts the other's video");

    // The CMS page reloads as it is (Moodle needs the token in its address): back in.
    await guest.reload();
    await enterRoom(guest);
    await playsRemoteVideo(guest, plan.moderatorIdentity);
    step("the guest reloaded and is back");

    await moderator.click("#end-meeting");
    markEnding();
    await moderator.click("#end-meeting-confirm");
    await screen(moderator, "ended");
    await screen(guest, "ended");
    step("ended");
    // The CMS site served its page and the design's files, nothing else: the client came
    // from the edge.
    seen.cmsRequests = [...new Set(requests)].filter((p) => p !== "/favicon.ico").sort();
  } finally {
    server.close();
  }
});
