// Drives the join page's waiting room in headless Debian Chromium (Playwright's playwright-core)
// for tests/web.rs:
//
//   node waiting_room_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "refused": TOKEN, "refusedIdentity": ID,
//             "shots": DIR}
// In a room with a waiting room, the moderator goes in. A guest and another user open their
// links and wait. The moderator's page lists both and changes the message they read (TEXT),
// which the guest's page then shows; the moderator lets the guest in, who then
// passes the pre-join check and meets the moderator, and turns the other away, whose page then
// says so. The pages renew their short-lived join tokens meanwhile. Prints one JSON line with what it saw (the Rust test asserts on it); screenshots go
// to DIR. Chromium gets fake camera and microphone devices.
import {
  enterRoom,
  playsRemoteVideo,
  runDriver,
  screen,
  STEP_TIMEOUT,
  toastText,
} from "./browsers.mjs";

await runDriver("waiting-failure", async ({ plan, seen, step, open, shot, markEnding }) => {
  const listed = (id) => `#waiting-list li[data-user-id="${id}"]`;

  const desktop = { viewport: { width: 1280, height: 800 } };
  const moderator = await open("moderator", plan.moderator, desktop);
  moderator.on("request", (request) => {
    if (new URL(request.url()).pathname === "/api/endRoom") {
      seen.endRoomAuthorization = request.headers()["authorization"];
    }
  });
  await enterRoom(moderator);
  // Nobody waits yet: the list is not shown.
  seen.listHiddenAtFirst = await moderator.$eval("#waiting-list", (el) => el.hidden);
  step("moderator in room");

  const guest = await open("guest", plan.guest, { viewport: { width: 390, height: 844 } });
  await screen(guest, "waiting");
  seen.guestWaitingText = await guest.textContent("#app");
  await shot(guest, "w1-waiting-phone");
  const refused = await open("refused", plan.refused, desktop);
  await screen(refused, "waiting");
  step("both wait");

  await moderator.waitForSelector(listed(plan.guestIdentity), { state: "visible" });
  await moderator.waitForSelector(listed(plan.refusedIdentity), { state: "visible" });
  seen.listedNames = await moderator.$$eval("#waiting-list .waiting-name", (names) =>
    names.map((n) => n.textContent),
  );
  seen.listTitle = await moderator.textContent("#waiting-title");
  await shot(moderator, "w2-waiting-list");
  // The moderator changes what those waiting read (in People); their pages show it at their
  // next ask.
  await moderator.click("#toggle-people");
  seen.messageShownToModerator = await moderator.inputValue("#waiting-message-input");
  await moderator.fill("#waiting-message-input", plan.newMessage);
  await moderator.click("#waiting-message-save");
  await guest.waitForFunction(
    (text) => document.querySelector(".waiting-message")?.textContent === text,
    plan.newMessage,
    { timeout: STEP_TIMEOUT },
  );
  seen.moderatorMessageToast = await toastText(moderator);
  seen.guestWaitingTextAfter = await guest.textContent("#app");
  await moderator.click("#toggle-people");
  // Still waiting a few polls later: nothing lets a waiting user in but the moderator.
  await guest.waitForTimeout(4000);
  seen.guestStillWaiting = await guest.$eval("#app", (app) => app.dataset.screen === "waiting");
  step("the moderator sees both");

  await moderator.click(`${listed(plan.guestIdentity)} .waiting-approve`);
  await enterRoom(guest);
  await playsRemoteVideo(moderator, plan.guestIdentity);
  await playsRemoteVideo(guest, plan.moderatorIdentity);
  step("the guest was let in and meets the moderator");

  await moderator.click(`${listed(plan.refusedIdentity)} .waiting-reject`);
  await refused.waitForSelector('#app[data-screen="error"][data-error="blocked"]');
  seen.refusedText = await refused.textContent("#app");
  await shot(refused, "w3-turned-away");
  await moderator.waitForSelector("#waiting-list", { state: "hidden" });
  seen.listHiddenAfter = true;
  step("the other was turned away");

  // The pages renew their join tokens (5 s after they start, then 60% into each new one's
  // life), and the moderator ends the meeting with a renewed one.
  await moderator.waitForFunction(
    (first) => {
      const now = sessionStorage.getItem("pnm_access_token");
      return !!now && now !== first;
    },
    plan.moderator,
    { timeout: STEP_TIMEOUT },
  );
  seen.moderatorRenewedToken = await moderator.evaluate(() => sessionStorage.getItem("pnm_access_token"));
  step("the moderator's token was renewed");

  await moderator.click("#end-meeting");
  markEnding();
  await moderator.click("#end-meeting-confirm");
  await screen(moderator, "ended");
  await screen(guest, "ended");
  step("meeting ended");
});
