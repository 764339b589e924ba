// What the join page's browser drivers share (join_page_browsers.mjs, waiting_room_browsers.mjs):
// headless Debian Chromium with fake camera and microphone, driven by Playwright's
// playwright-core (installed by scripts/bootstrap.sh outside the clone; NODE_MODULES_DIR names
// it), and the page helpers the drivers use.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.NODE_MODULES_DIR, "noop.js"));
const { chromium } = require("playwright-core");

/** How long one step may take. */
export const STEP_TIMEOUT = 30_000;

/** Starts headless Chromium with fake media devices. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}

/**
 * Opens the join link `${base}/?access_token=TOKEN` in a new context of `browser` (camera and
 * microphone allowed, `contextOptions` added); console and page errors go to
 * `onError("NAME: text")`. `prepare(page)`, if given, runs before the link is opened (the page
 * asks for its session as it loads).
 */
export async function openJoinLink(browser, base, name, token, contextOptions, onError, prepare) {
  const context = await browser.newContext({
    permissions: ["camera", "microphone"],
    ...contextOptions,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on("console", (message) => {
    if (message.type() === "error") onError(`${name}: ${message.text()}`);
  });
  page.on("pageerror", (error) => onError(`${name}: ${error.message}`));
  if (prepare) await prepare(page);
  await page.goto(`${base}/?access_token=${encodeURIComponent(token)}`);
  return page;
}

/** Waits until the page shows `value` (`#app[data-screen]`). */
export const screen = (page, value) =>
  page.waitForSelector(`#app[data-screen="${value}"]`, { timeout: STEP_TIMEOUT });

/** From the pre-join screen, joins the room: clicks Join and waits for the room screen. */
export async function enterRoom(page) {
  await screen(page, "prejoin");
  await page.click("#join");
  await screen(page, "room");
}

/** A full-page screenshot `dir/name.png`. */
export async function shot(page, dir, name) {
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** Waits until `page` plays a remote participant's camera (frames decoded, not just a tile);
 * throws after `timeout` ms. */
export async function playsRemoteVideo(page, identity, timeout = STEP_TIMEOUT) {
  await page.waitForFunction(
    (id) => {
      const video = document.querySelector(
        `.tile[data-identity="${id}"]:not([data-local="true"]) video`,
      );
      return !!video && video.videoWidth > 0 && video.readyState >= 2 && !video.paused;
    },
    identity,
    { timeout },
  );
}

/** After a failure: what each page showed (into `screens`) and a screenshot of each. */
export async function keepFailureScreens(browser, screens, dir, prefix) {
  for (const [c, context] of browser.contexts().entries()) {
    for (const [i, page] of context.pages().entries()) {
      screens[`context${c}-${i}`] = await page
        .evaluate(() => document.getElementById("app")?.outerHTML?.slice(0, 2000))
        .catch(() => "unavailable");
      await page
        .screenshot({ path: join(dir, `${prefix}-${c}-${i}.png`) })
        .catch(() => {});
    }
  }
}

/**
 * Runs a driver: reads PLAN_JSON (argv[2]; `plan.base` is the edge, `plan.shots` the
 * screenshot directory), starts Chromium and runs `scenario` with what the drivers share:
 * `plan`, `browser`, `seen` (printed as one JSON line at the end, `seen.ok` set by whether
 * the scenario finished), `step(name)`, `open(name, token, contextOptions, prepare)` (a join link),
 * `shot(page, name)`, `consoleError(text)`, and `markEnding()`, called when the meeting is
 * being ended: errors logged after it go to `seen.consoleErrorsAtEnd` (a renewal or poll on
 * its way then may be refused). After a failure each page's screen is kept as
 * `<failurePrefix>-*.png`.
 */
export async function runDriver(failurePrefix, scenario) {
  const plan = JSON.parse(process.argv[2]);
  mkdirSync(plan.shots, { recursive: true });
  const browser = await launchChromium();
  const seen = { consoleErrors: [], consoleErrorsAtEnd: [], screens: {}, steps: [] };
  let ending = false;
  const consoleError = (text) => (ending ? seen.consoleErrorsAtEnd : seen.consoleErrors).push(text);
  try {
    await scenario({
      plan,
      browser,
      seen,
      step: (name) => seen.steps.push(name),
      open: (name, token, contextOptions, prepare) =>
        openJoinLink(browser, plan.base, name, token, contextOptions, consoleError, prepare),
      shot: (page, name) => shot(page, plan.shots, name),
      consoleError,
      markEnding: () => {
        ending = true;
      },
    });
    seen.ok = true;
  } catch (error) {
    seen.ok = false;
    seen.error = String(error?.stack || error);
    await keepFailureScreens(browser, seen.screens, plan.shots, failurePrefix);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
}

/** Clicks `selector` and returns the page's answer from `/api/recording` that follows. */
export async function clickForRecordingAnswer(page, selector) {
  const answer = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/recording");
  await page.click(selector);
  return answer;
}

/** Keeps what `reply` (an `/api/recording` answer) asked and answered as `seen.<name>Request`,
 * `<name>Status` and `<name>Answer`. */
export async function keepReply(seen, name, reply) {
  seen[`${name}Request`] = reply.request().postDataJSON();
  seen[`${name}Status`] = reply.status();
  seen[`${name}Answer`] = await reply.json().catch(() => null);
}

/** Waits until the control `selector` says it is pressed (`aria-pressed`) or not. */
export const waitPressed = (page, selector, pressed) =>
  page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.getAttribute("aria-pressed") === want,
    [selector, String(pressed)],
  );

/** Waits until the control `selector` reads `text` (its `.ctl-text`). */
export const waitControlText = (page, selector, text, timeout = STEP_TIMEOUT) =>
  page.waitForFunction(
    ([sel, want]) => document.querySelector(`${sel} .ctl-text`)?.textContent?.trim() === want,
    [selector, text],
    { timeout },
  );

/** Waits until the job control `selector` (Record, Go live) offers to start again: its
 * accessible name is `label` and it is enabled. A stop's answer can show the start words a
 * moment before the page learns that the job is still ending ("Saving…", "Ending…"). */
export const waitStartOffered = (page, selector, label, timeout = STEP_TIMEOUT) =>
  page.waitForFunction(
    ([sel, want]) => {
      const button = document.querySelector(sel);
      return button?.getAttribute("aria-label") === want && !button.disabled;
    },
    [selector, label],
    { timeout },
  );

/** The text of the page's toast, empty when none shows. */
export const toastText = (page) =>
  page.$eval(".toast", (t) => (t.hidden ? "" : t.textContent)).catch(() => "");

/**
 * Clicks `selector` (a control that asks the edge for a recorder job) until the answer of
 * `/api/recording` is not 503, at most 20 times: until the edge has heard a recorder's first
 * heartbeat it answers that no recorder is free, and the user tries again a moment later.
 * `onRefused()` runs after each 503, once the control is enabled again. Returns the last
 * answer and how many clicks it took.
 */
export async function clickUntilARecorderTakesIt(page, selector, onRefused = async () => {}) {
  for (let attempts = 1; ; attempts += 1) {
    const reply = await clickForRecordingAnswer(page, selector);
    if (reply.status() !== 503 || attempts >= 20) return { reply, attempts };
    await page.waitForFunction(
      (sel) => !document.querySelector(sel)?.disabled,
      selector,
      { timeout: STEP_TIMEOUT },
    );
    await onRefused();
    await page.waitForTimeout(1000);
  }
}
