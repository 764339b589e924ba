// Drives the join page in an end-to-end encrypted room, in headless Debian Chromium, for
// tests/web.rs:
//
//   node encrypted_room_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "intruder": TOKEN, "intruderIdentity": ID,
//             "plain": TOKEN, "plainIdentity": ID,
//             "livekitHttp": URL, "livekitRoom": NAME, "livekitToken": ADMIN_TOKEN,
//             "shots": DIR}
// Both join; each must play the other's video, which it can only do by decrypting it with the
// room's key. Meanwhile LiveKit is asked (ListParticipants) how the tracks it forwards are
// encrypted. Then an intruder joins with a valid link whose session answer is rewritten to
// carry another key: it must not be able to play anyone's video, nor they its. Last a page
// whose answer loses the key joins and publishes in the clear: the others must not play it.
// Prints one JSON line with what it saw; screenshots go to DIR.
import { mkdirSync } from "node:fs";

import {
  keepFailureScreens,
  launchChromium,
  openJoinLink,
  playsRemoteVideo,
  screen,
  shot as shotIn,
} from "./browsers.mjs";

const plan = JSON.parse(process.argv[2]);
mkdirSync(plan.shots, { recursive: true });
const browser = await launchChromium();

const seen = { consoleErrors: [], consoleErrorsAtEnd: [], screens: {}, steps: [] };
const step = (name) => seen.steps.push(name);
let ending = false;
const consoleError = (text) => (ending ? seen.consoleErrorsAtEnd : seen.consoleErrors).push(text);
const open = (name, token) =>
  openJoinLink(browser, plan.base, name, token, { viewport: { width: 1280, height: 800 } }, consoleError);
const shot = (page, name) => shotIn(page, plan.shots, name);

/** The encryption of each track LiveKit forwards in the room, by participant. */
async function livekitTracks() {
  const res = await fetch(`${plan.livekitHttp}/twirp/livekit.RoomService/ListParticipants`, {
    method: "POST",
    headers: { Authorization: `Bearer ${plan.livekitToken}`, "Content-Type": "application/json" },
    body: JSON.stringify({ room: plan.livekitRoom }),
  });
  const body = await res.json();
  return (body.participants || []).flatMap((p) =>
    (p.tracks || []).map((t) => ({
      identity: p.identity,
      type: t.type || "AUDIO",
      encryption: t.encryption || "NONE",
    })),
  );
}

/** Opens `token`'s join link in `context`, its `/api/session` answer changed by `rewrite`, and
 * joins the room. */
async function joinWithRewrittenSession(context, token, rewrite) {
  await context.route("**/api/session", async (route) => {
    const response = await route.fetch();
    const json = await response.json();
    if (json.e2ee_key) rewrite(json);
    await route.fulfill({ response, json });
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => consoleError(`rewritten: ${error.message}`));
  await page.goto(`${plan.base}/?access_token=${encodeURIComponent(token)}`);
  await screen(page, "prejoin");
  await page.click("#join");
  await screen(page, "room");
  return page;
}

try {
  const moderator = await open("moderator", plan.moderator);
  await screen(moderator, "prejoin");
  await moderator.click("#join");
  await screen(moderator, "room");
  const guest = await open("guest", plan.guest);
  await screen(guest, "prejoin");
  await guest.click("#join");
  await screen(guest, "room");
  step("both in the room");

  await playsRemoteVideo(moderator, plan.guestIdentity);
  await playsRemoteVideo(guest, plan.moderatorIdentity);
  step("each decrypts the other's video");
  seen.moderatorHeader = await moderator.textContent(".room-bar");
  seen.moderatorMarkedEncrypted = await moderator.$eval(".room-bar", (el) => el.dataset.e2ee === "true");
  await shot(moderator, "e1-encrypted-room");
  seen.livekitTracks = await livekitTracks();
  step("LiveKit asked");

  // The same page with a wrong key: LiveKit forwards it everything, and it can read nothing.
  const intruderContext = await browser.newContext({
    permissions: ["camera", "microphone"],
    viewport: { width: 1280, height: 800 },
  });
  const intruder = await joinWithRewrittenSession(intruderContext, plan.intruder, (json) => {
    json.e2ee_key = "0123456789abcdef0123456789abcdef";
  });
  const decodes = (page, identity) =>
    playsRemoteVideo(page, identity, 10_000).then(
      () => true,
      () => false,
    );
  // Long enough for a readable video to play (the pages above took a second or two).
  const [intruderReads, moderatorReadsIntruder] = await Promise.all([
    decodes(intruder, plan.moderatorIdentity),
    decodes(moderator, plan.intruderIdentity),
  ]);
  seen.intruderPlayedVideo = intruderReads;
  seen.moderatorPlayedIntruder = moderatorReadsIntruder;
  seen.intruderTiles = await intruder.$$eval(".tile", (tiles) => tiles.length);
  await shot(intruder, "e2-wrong-key");
  step("the wrong key reads nothing");

  // A page that publishes without encryption (its session answer loses the key): the others
  // neither play nor receive its media, and say so.
  const plainContext = await browser.newContext({
    permissions: ["camera", "microphone"],
    viewport: { width: 1280, height: 800 },
  });
  await joinWithRewrittenSession(plainContext, plan.plain, (json) => {
    delete json.e2ee_key;
  });
  await moderator.waitForSelector('.banner[data-plain-media="true"]', { state: "visible" });
  seen.moderatorBanner = await moderator.textContent(".banner");
  seen.moderatorPlayedPlain = await decodes(moderator, plan.plainIdentity);
  await shot(moderator, "e3-plain-media-refused");
  step("plain media refused");

  await moderator.click("#end-meeting");
  ending = true;
  await moderator.click("#end-meeting-confirm");
  await screen(moderator, "ended");
  await screen(guest, "ended");
  seen.ok = true;
} catch (error) {
  seen.ok = false;
  seen.error = String(error?.stack || error);
  await keepFailureScreens(browser, seen.screens, plan.shots, "encrypted-failure");
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
