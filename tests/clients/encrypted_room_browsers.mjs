// Drives the join page in an end-to-end encrypted room, in headless Debian Chromium, for
// tests/web.rs:
//
//   node encrypted_room_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "livekitHttp": URL, "livekitRoom": NAME,
//             "livekitToken": ADMIN_TOKEN, "shots": DIR}
// Both join; each must play the other's video, which it can only do by decrypting it with the
// room's key. Meanwhile LiveKit is asked (ListParticipants) how the tracks it forwards are
// encrypted. Prints one JSON line with what it saw; screenshots go to DIR.
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
