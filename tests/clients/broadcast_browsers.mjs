// Drives the join page's live broadcast ("Go live") in headless Debian Chromium (Playwright's
// playwright-core) for tests/web.rs:
//
//   node broadcast_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "rtmpUrl": "rtmp://HOST:PORT/live", "streamKey": KEY, "flv": PATH,
//             "liveSeconds": N, "shots": DIR}
// A moderator (desktop viewport) joins with fake camera and microphone and clicks Go live. A
// stream URL that is not RTMP is refused in the panel; then the RTMP server's URL and a stream
// key start the broadcast. Once the RTMP server records the stream (PATH grows) and ffprobe can
// read it live from `<rtmpUrl>/<streamKey>` (and the page's badge says Live), N seconds later
// the moderator clicks Stop live.
// Prints one JSON line with what it saw (the Rust test asserts on it); screenshots go to DIR.
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import {
  clickForRecordingAnswer,
  clickUntilARecorderTakesIt,
  enterRoom,
  keepReply,
  runDriver,
  toastText,
  waitPressed,
  waitStartOffered,
} from "./browsers.mjs";

/** How long the recorder may take to join the room and reach the RTMP server. */
const RECORDER_TIMEOUT = 60_000;

/** ffprobe's JSON view of a live RTMP stream (streams' codecs), or its error. */
const probeLive = (url) =>
  new Promise((resolve) => {
    execFile(
      "ffprobe",
      ["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "json", url],
      { timeout: 30_000 },
      (error, stdout, stderr) => {
        if (error) resolve({ error: `${error.message} ${stderr}` });
        else resolve(JSON.parse(stdout));
      },
    );
  });

await runDriver("live-failure", async ({ plan, seen, step, open, shot }) => {
  // Read at once: the page may change the button between two reads.
  const liveButton = (page) =>
    page.$eval("#toggle-live", (button) => ({
      text: button.querySelector(".ctl-text")?.textContent?.trim(),
      pressed: button.getAttribute("aria-pressed"),
      label: button.getAttribute("aria-label"),
      expanded: button.getAttribute("aria-expanded"),
    }));
  const panelShown = (page) =>
    page.$eval("#live-panel", (panel) => !panel.hidden && panel.offsetParent !== null).catch(() => false);
  const panelError = (page) =>
    page.$eval("#live-panel .confirm-error", (e) => ({
      shown: !e.hidden,
      role: e.getAttribute("role"),
      text: e.textContent?.trim(),
    }));

  const moderator = await open("moderator", plan.moderator, {
    viewport: { width: 1280, height: 800 },
  });
  await enterRoom(moderator);
  step("moderator in room");

  seen.buttonBefore = await liveButton(moderator);
  seen.panelShownBefore = await panelShown(moderator);
  await moderator.click("#toggle-live");
  await moderator.waitForSelector("#live-panel", { state: "visible" });
  seen.panelShownAfterClick = await panelShown(moderator);
  seen.buttonPanelOpen = await liveButton(moderator);
  seen.focusedAfterOpen = await moderator.evaluate(() => document.activeElement?.id ?? "");
  seen.keyInputType = await moderator.getAttribute("#live-key", "type");
  step("Go live opened the panel");

  // A web address is not a stream URL: the panel says so and nothing is sent.
  let requests = 0;
  moderator.on("request", (r) => {
    if (new URL(r.url()).pathname === "/api/recording") requests += 1;
  });
  await moderator.fill("#live-url", "http://127.0.0.1/live");
  await moderator.fill("#live-key", plan.streamKey);
  await moderator.click("#live-start");
  await moderator.waitForSelector("#live-panel .confirm-error", { state: "visible" });
  seen.badUrlError = await panelError(moderator);
  seen.requestsAfterBadUrl = requests;
  seen.buttonAfterBadUrl = await liveButton(moderator);
  await shot(moderator, "l1-bad-url-desktop");
  step("a bad URL was refused in the panel");

  // The RTMP server. Until the edge has heard the recorder's first heartbeat it answers that no
  // recorder is free (the panel says so); the user tries again a moment later.
  await moderator.fill("#live-url", plan.rtmpUrl);
  const { reply, attempts } = await clickUntilARecorderTakesIt(moderator, "#live-start", async () => {
    seen.busyError = await panelError(moderator);
  });
  seen.startAttempts = attempts;
  await keepReply(seen, "start", reply);
  await waitPressed(moderator, "#toggle-live", true);
  seen.buttonLive = await liveButton(moderator);
  seen.panelShownWhileLive = await panelShown(moderator);
  seen.keyLeftInPage = await moderator.inputValue("#live-key");
  seen.toastAfterStart = await toastText(moderator);
  seen.recordButtonWhileLive = (await moderator.textContent("#toggle-recording .ctl-text"))?.trim();
  step("moderator went live");

  // The stream reaches the RTMP server and can be played from it.
  const deadline = Date.now() + RECORDER_TIMEOUT;
  while (!(statSync(plan.flv, { throwIfNoEntry: false })?.size > 0)) {
    if (Date.now() > deadline) throw new Error(`nothing reached the RTMP server at ${plan.flv}`);
    await moderator.waitForTimeout(250);
  }
  step("the stream reached the RTMP server");
  seen.liveProbe = await probeLive(`${plan.rtmpUrl}/${plan.streamKey}`);
  step("ffprobe read the live stream");
  // The badge says the room is live, not recorded.
  await moderator.waitForFunction(
    () => {
      const badge = document.querySelector(".rec-badge");
      return !!badge && !badge.hidden && badge.textContent.trim() === "Live";
    },
    null,
    { timeout: RECORDER_TIMEOUT },
  );
  seen.badgeWhileLive = (await moderator.textContent(".rec-badge"))?.trim();
  step("the badge says Live");
  await shot(moderator, "l2-live-desktop");
  await moderator.waitForTimeout((plan.liveSeconds ?? 4) * 1000);

  await keepReply(seen, "stop", await clickForRecordingAnswer(moderator, "#toggle-live"));
  await waitPressed(moderator, "#toggle-live", false);
  step("moderator clicked Stop live");
  // The recorder leaves the room: LiveKit no longer reports it recorded.
  await moderator.waitForFunction(() => document.querySelector(".rec-badge")?.hidden === true, null, {
    timeout: RECORDER_TIMEOUT,
  });
  step("the recorder left");
  // While the recorder ends the stream the button waits ("Ending…"); then Go live again.
  await waitStartOffered(moderator, "#toggle-live", "Start a live broadcast", RECORDER_TIMEOUT);
  seen.buttonAfter = await liveButton(moderator);
  seen.panelShownAfterStop = await panelShown(moderator);
  await shot(moderator, "l3-stopped-desktop");
});
