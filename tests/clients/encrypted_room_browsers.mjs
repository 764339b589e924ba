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
import {
  enterRoom,
  playsRemoteVideo,
  runDriver,
  screen,
} from "./browsers.mjs";

await runDriver("encrypted-failure", async ({ plan, browser, seen, step, open, shot, consoleError, markEnding }) => {
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

  /** Opens `token`'s join link in a new browser context, its `/api/session` answer changed by
   * `rewrite`, and joins the room. Only its page errors are recorded (it cannot decrypt, and
   * may say so on the console). */
  async function joinWithRewrittenSession(token, rewrite) {
    const context = await browser.newContext({
      permissions: ["camera", "microphone"],
      viewport: { width: 1280, height: 800 },
    });
    await context.route("**/api/session", async (route) => {
      const response = await route.fetch();
      const json = await response.json();
      if (json.e2ee_key) rewrite(json);
      await route.fulfill({ response, json });
    });
    const page = await context.newPage();
    page.on("pageerror", (error) => consoleError(`rewritten: ${error.message}`));
    await page.goto(`${plan.base}/?access_token=${encodeURIComponent(token)}`);
    await enterRoom(page);
    return page;
  }

  const desktop = { viewport: { width: 1280, height: 800 } };
  const moderator = await open("moderator", plan.moderator, desktop);
  await enterRoom(moderator);
  const guest = await open("guest", plan.guest, desktop);
  await enterRoom(guest);
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
  const intruder = await joinWithRewrittenSession(plan.intruder, (json) => {
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

  // The chat is encrypted too: the guest reads the moderator's message, the wrong key does not.
  await moderator.click("#toggle-chat");
  await moderator.fill("#chat-input", "For the board only.");
  await moderator.click("#chat-send");
  await guest.waitForSelector("#toggle-chat .ctl-badge:not([hidden])");
  await guest.click("#toggle-chat");
  seen.guestChat = await guest.$$eval("#chat .chat-text", (items) => items.map((m) => m.textContent));
  await intruder.waitForTimeout(2000);
  seen.intruderChat = await intruder.$$eval("#chat .chat-text", (items) => items.map((m) => m.textContent));
  step("the chat reads only with the key");

  // A page that publishes without encryption (its session answer loses the key): the others
  // neither play nor receive its media, and say so.
  await joinWithRewrittenSession(plan.plain, (json) => {
    delete json.e2ee_key;
  });
  await moderator.waitForSelector('.banner[data-plain-media="true"]', { state: "visible" });
  seen.moderatorBanner = await moderator.textContent(".banner");
  seen.moderatorPlayedPlain = await decodes(moderator, plan.plainIdentity);
  await shot(moderator, "e3-plain-media-refused");
  step("plain media refused");

  await moderator.click("#end-meeting");
  markEnding();
  await moderator.click("#end-meeting-confirm");
  await screen(moderator, "ended");
  await screen(guest, "ended");
});
