// Drives the join page in headless Debian Chromium (Playwright's playwright-core) for
// tests/web.rs:
//
//   node join_page_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "hidden": TOKEN, "expired": TOKEN,
//             "shots": DIR}
// Two browsers (the moderator on a desktop viewport, the guest on a phone one) open their join
// links, pass the pre-join check, and each waits until it plays the other's video. A hidden
// user joins without publishing and without a tile. Another browser opens an expired link. The moderator ends the meeting and both others must see it end. Prints one
// JSON line with what it saw (the Rust test asserts on it); screenshots of each key screen go
// to DIR. Chromium gets fake camera and microphone devices.
import {
  playsRemoteVideo,
  runDriver,
  screen,
} from "./browsers.mjs";

await runDriver("failure", async ({ plan, seen, step, open, shot, markEnding }) => {
  /** Reaches the Join button with the keyboard alone and presses it. */
  async function joinByKeyboard(page) {
    for (let i = 0; i < 25; i++) {
      await page.keyboard.press("Tab");
      if (await page.evaluate(() => document.activeElement?.id === "join")) {
        await page.keyboard.press("Enter");
        return true;
      }
    }
    return false;
  }

  const moderator = await open("moderator", plan.moderator, {
    viewport: { width: 1280, height: 800 },
  });
  await screen(moderator, "prejoin");
  // The token must not stay in the address bar, nor ride along on requests as a cookie; it
  // is kept in this tab's session storage for a reload.
  seen.moderatorUrlAfterLoad = moderator.url();
  seen.moderatorCookies = await moderator.evaluate(() => document.cookie);
  seen.moderatorTokenKept = await moderator.evaluate(
    () => (sessionStorage.getItem("pnm_access_token") || "").length > 0,
  );
  await moderator.waitForFunction(() => {
    const video = document.querySelector("video");
    return !!video && video.videoWidth > 0;
  });
  await shot(moderator, "1-prejoin-desktop");
  step("moderator prejoin");
  await moderator.click("#join");
  await screen(moderator, "room");
  step("moderator in room");

  const guest = await open("guest", plan.guest, {
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
  });
  await screen(guest, "prejoin");
  await shot(guest, "2-prejoin-phone");
  seen.guestJoinedByKeyboard = await joinByKeyboard(guest);
  await screen(guest, "room");
  step("guest in room");

  await playsRemoteVideo(moderator, plan.guestIdentity);
  await playsRemoteVideo(guest, plan.moderatorIdentity);
  step("each plays the other's video");
  seen.moderatorTiles = await moderator.$$eval(".tile", (tiles) => tiles.length);
  seen.guestTiles = await guest.$$eval(".tile", (tiles) => tiles.length);
  seen.guestOverflowsPhone = await guest.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth + 1,
  );
  seen.guestHasEndButton = (await guest.$("#end-meeting")) !== null;
  // Screen sharing is locked for guests by default: the page offers it to the moderator only
  // (the page's own decision, its `hidden` attribute, whatever the layout shows on a phone).
  const visible = (page, selector) => page.$eval(selector, (el) => !el.hidden).catch(() => false);
  seen.moderatorCanShareScreen = await visible(moderator, "#toggle-screen");
  seen.guestCanShareScreen = await visible(guest, "#toggle-screen");
  seen.guestHasCameraButton = await visible(guest, "#toggle-camera");
  seen.moderatorHasEndButton = (await moderator.$("#end-meeting")) !== null;
  await shot(moderator, "3-room-desktop");
  await shot(guest, "4-room-phone");

  // Mute toggles report their state to assistive technology.
  await moderator.click("#toggle-mic");
  seen.micPressedAfterToggle = await moderator.getAttribute("#toggle-mic", "aria-pressed");
  await moderator.click("#toggle-mic");

  // What the moderator's page cost to show the room: bytes over the wire (gzip where the edge
  // sent it), and time from navigation to connected.
  seen.moderatorLoad = await moderator.evaluate(() => {
    const timings = window.edgemeetTimings || {};
    const shown = timings.roomShown ?? Infinity;
    const entries = [
      ...performance.getEntriesByType("navigation"),
      ...performance.getEntriesByType("resource"),
    ].filter((e) => e.responseEnd <= shown);
    return {
      connectedMs: timings.connected,
      roomShownMs: timings.roomShown,
      transferBytes: entries.reduce((sum, e) => sum + (e.transferSize || 0), 0),
      encodedBodyBytes: entries.reduce((sum, e) => sum + (e.encodedBodySize || 0), 0),
      decodedBodyBytes: entries.reduce((sum, e) => sum + (e.decodedBodySize || 0), 0),
      // Paths only: the page's own URL carries the join token.
      files: entries.map((e) => new URL(e.name).pathname),
    };
  });

  // A hidden user (e.g. a recorder bot) goes straight in, publishes nothing and is not shown.
  const observer = await open("hidden", plan.hidden, { viewport: { width: 1280, height: 800 } });
  await screen(observer, "room");
  await playsRemoteVideo(observer, plan.moderatorIdentity);
  await playsRemoteVideo(observer, plan.guestIdentity);
  seen.hiddenTiles = await observer.$$eval(".tile", (tiles) => tiles.length);
  seen.hiddenHasMicButton = (await observer.$("#toggle-mic")) !== null;
  await moderator.waitForTimeout(1000);
  seen.moderatorTilesWithHidden = await moderator.$$eval(".tile", (tiles) => tiles.length);
  step("hidden user in room");

  const late = await open("expired", plan.expired, { viewport: { width: 1280, height: 800 } });
  await late.waitForSelector('#app[data-screen="error"][data-error="expired"]');
  seen.expiredText = await late.textContent("#app");
  await shot(late, "5-expired-link");
  step("expired link refused");

  await moderator.click("#end-meeting");
  markEnding();
  await moderator.click("#end-meeting-confirm");
  await screen(moderator, "ended");
  await screen(guest, "ended");
  await screen(observer, "ended");
  step("meeting ended for everyone");
  await shot(moderator, "6-ended-moderator");
  await shot(guest, "7-ended-phone");
});
