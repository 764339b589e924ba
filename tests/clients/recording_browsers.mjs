// Drives the join page's recording controls in headless Debian Chromium (Playwright's
// playwright-core) for tests/web.rs:
//
//   node recording_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "cohost": TOKEN, "recordSeconds": N,
//             "shots": DIR}
// A moderator (desktop viewport) and a guest (phone viewport) join with fake camera and
// microphone and play each other's video. The moderator clicks Record; both pages must show
// the Recording badge (the edge writes the room's jobs into its LiveKit metadata), and a second
// moderator, in the room all along, must be offered Stop recording without pressing anything.
// After N seconds the first moderator clicks Stop recording: the badge must go from
// every page and both moderators be offered Record again. Prints one JSON line with what it
// saw (the Rust test asserts on it); screenshots go to DIR.
import {
  clickForRecordingAnswer,
  clickUntilARecorderTakesIt,
  enterRoom,
  keepReply,
  playsRemoteVideo,
  runDriver,
  toastText,
  waitControlText,
  waitPressed,
  waitStartOffered,
} from "./browsers.mjs";

/** How long the recorder may take to join the room (it starts a browser-less composite). */
const RECORDER_TIMEOUT = 60_000;

await runDriver("rec-failure", async ({ plan, seen, step, open, shot }) => {
  const badgeShown = (page) =>
    page.$eval(".rec-badge", (badge) => !badge.hidden && badge.offsetParent !== null).catch(() => false);
  const waitBadge = (page, shown, timeout = RECORDER_TIMEOUT) =>
    page.waitForFunction(
      (want) => {
        const badge = document.querySelector(".rec-badge");
        return !!badge && !badge.hidden === want;
      },
      shown,
      { timeout },
    );
  // Read at once: the page may change the button between two reads.
  const recordButton = (page) =>
    page.$eval("#toggle-recording", (button) => ({
      text: button.querySelector(".ctl-text")?.textContent?.trim(),
      pressed: button.getAttribute("aria-pressed"),
      label: button.getAttribute("aria-label"),
    }));

  const moderator = await open("moderator", plan.moderator, {
    viewport: { width: 1280, height: 800 },
  });
  await enterRoom(moderator);
  step("moderator in room");

  const guest = await open("guest", plan.guest, {
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
  });
  await enterRoom(guest);
  step("guest in room");

  const cohost = await open("cohost", plan.cohost, { viewport: { width: 1280, height: 800 } });
  await enterRoom(cohost);
  step("a second moderator in room");

  await playsRemoteVideo(moderator, plan.guestIdentity);
  await playsRemoteVideo(guest, plan.moderatorIdentity);
  step("each plays the other's video");

  seen.badgeBefore = { moderator: await badgeShown(moderator), guest: await badgeShown(guest) };
  seen.guestHasRecordButton = (await guest.$("#toggle-recording")) !== null;
  seen.moderatorButtonBefore = await recordButton(moderator);
  seen.cohostButtonBefore = await recordButton(cohost);

  // Record. Until the edge has heard the recorder's first heartbeat it answers that no
  // recorder is free (the page says so); the user tries again a moment later.
  const { reply, attempts } = await clickUntilARecorderTakesIt(moderator, "#toggle-recording");
  seen.recordAttempts = attempts;
  await keepReply(seen, "start", reply);
  await waitPressed(moderator, "#toggle-recording", true);
  seen.moderatorButtonRecording = await recordButton(moderator);
  seen.toastAfterStart = await toastText(moderator);
  step("moderator clicked Record");

  await waitBadge(moderator, true);
  await waitBadge(guest, true);
  seen.badgeWhileRecording = {
    moderator: await badgeShown(moderator),
    guest: await badgeShown(guest),
  };
  seen.badgeText = (await guest.textContent(".rec-badge"))?.trim();
  seen.badgeRole = await guest.getAttribute(".rec-badge", "role");
  seen.guestHasRecordButtonWhileRecording = (await guest.$("#toggle-recording")) !== null;
  step("both pages show the Recording badge");
  await shot(moderator, "r1-recording-desktop");
  await shot(guest, "r2-recording-phone");

  // The other moderator, in the room all along, is told: Stop recording, not Record.
  await waitControlText(cohost, "#toggle-recording", "Stop recording", RECORDER_TIMEOUT);
  await waitBadge(cohost, true);
  seen.cohostButtonWhileRecording = await recordButton(cohost);
  seen.cohostBadgeText = (await cohost.textContent(".rec-badge"))?.trim();
  step("the other moderator is offered Stop recording");

  await moderator.waitForTimeout((plan.recordSeconds ?? 5) * 1000);

  await keepReply(seen, "stop", await clickForRecordingAnswer(moderator, "#toggle-recording"));
  await waitPressed(moderator, "#toggle-recording", false);
  step("moderator clicked Stop recording");
  // While the recorder saves the file the button may wait ("Saving…"); then Record again, on
  // the other moderator's page too.
  await waitStartOffered(moderator, "#toggle-recording", "Start recording", RECORDER_TIMEOUT);
  seen.moderatorButtonAfter = await recordButton(moderator);
  await waitStartOffered(cohost, "#toggle-recording", "Start recording", RECORDER_TIMEOUT);
  seen.cohostButtonAfter = await recordButton(cohost);
  step("both moderators are offered Record again");

  await waitBadge(moderator, false);
  await waitBadge(guest, false);
  await waitBadge(cohost, false);
  seen.badgeAfter = {
    moderator: await badgeShown(moderator),
    guest: await badgeShown(guest),
    cohost: await badgeShown(cohost),
  };
  step("the badge went from every page");
  await shot(moderator, "r3-stopped-desktop");
  await shot(guest, "r4-stopped-phone");
});
