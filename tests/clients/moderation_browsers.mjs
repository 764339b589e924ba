// Drives a moderator keeping order from the join page in headless Debian Chromium (Playwright's
// playwright-core) for tests/web.rs:
//
//   node moderation_browsers.mjs PLAN_JSON
//
// PLAN_JSON: {"base": "http://127.0.0.1:PORT", "moderator": TOKEN, "moderatorIdentity": ID,
//             "guest": TOKEN, "guestIdentity": ID, "pest": TOKEN, "pestIdentity": ID,
//             "pestLiveKitFile": PATH, "roomId": ID, "apiKey": KEY, "apiSecret": SECRET,
//             "shots": DIR}
// The moderator and two guests meet, microphones on. The moderator opens People, mutes the
// guest (whose page says so and shows the microphone off), removes the guest (whose page says
// so, and who rejoins), locks and unlocks the guest's microphone and everyone's cameras (the
// guests' pages stop offering them, and offer them again), reads the guest's chat message and
// has the guest's chat locked and unlocked, lowers the hand the guest raised, then removes the
// other one and
// blocks them (whose page says so, and
// whose rejoin is refused). The meeting goes on: the Rust test then tries the blocked user's
// LiveKit token (written to PATH, the last one the page got) against LiveKit itself. Last, the
// backend broadcasts a warning to the room (room/broadcastToRoom, signed with KEY and SECRET):
// both pages in the meeting show it. Prints one JSON line with what
// it saw; screenshots go to DIR.
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";

import { enterRoom, runDriver, screen, toastText, waitPressed } from "./browsers.mjs";

await runDriver("moderation-failure", async ({ plan, seen, step, open, shot }) => {
  const row = (id) => `#people li[data-user-id="${id}"]`;
  const desktop = { viewport: { width: 1280, height: 800 } };

  const moderator = await open("moderator", plan.moderator, desktop);
  await enterRoom(moderator);
  const guest = await open("guest", plan.guest, desktop);
  await enterRoom(guest);
  // The page asks for its session as it loads: the route is set before the link opens.
  const keepLiveKitSession = (page) =>
    page.route("**/api/session", async (route) => {
      const response = await route.fetch();
      if (response.status() === 200) {
        const body = await response.json();
        writeFileSync(plan.pestLiveKitFile, JSON.stringify({ url: body.livekit_url, token: body.token }), {
          mode: 0o600,
        });
      }
      await route.fulfill({ response });
    });
  const pest = await open("pest", plan.pest, { viewport: { width: 390, height: 844 } }, keepLiveKitSession);
  await enterRoom(pest);
  step("three in the room");

  // Guests have no People control.
  seen.guestHasPeople = (await guest.$("#toggle-people")) !== null;
  seen.peopleHiddenAtFirst = await moderator.$eval("#people", (el) => el.hidden);
  await moderator.click("#toggle-people");
  await moderator.waitForSelector("#people", { state: "visible" });
  for (const id of [plan.guestIdentity, plan.pestIdentity]) {
    await moderator.waitForSelector(`${row(id)}[data-microphone="on"]`);
  }
  seen.peopleTitle = await moderator.textContent("#people-title");
  seen.listedNames = await moderator.$$eval("#people .people-name", (names) => names.map((n) => n.textContent));
  await shot(moderator, "m1-people");
  step("the moderator sees who is in");

  await waitPressed(guest, "#toggle-mic", false);
  await moderator.click(`${row(plan.guestIdentity)} .people-mute`);
  await waitPressed(guest, "#toggle-mic", true);
  await guest.waitForFunction(() => document.querySelector(".toast")?.hidden === false);
  seen.guestToast = await toastText(guest);
  await moderator.waitForSelector(`${row(plan.guestIdentity)}[data-microphone="off"]`);
  seen.muteHiddenAfter = await moderator.$eval(`${row(plan.guestIdentity)} .people-mute`, (b) => b.hidden);
  step("the guest was muted");

  // Remove asks first; Cancel changes nothing.
  await moderator.click(`${row(plan.guestIdentity)} .people-remove`);
  await moderator.waitForSelector(`${row(plan.guestIdentity)} .people-confirm`, { state: "visible" });
  seen.confirmText = await moderator.textContent(`${row(plan.guestIdentity)} .people-confirm`);
  await moderator.click(`${row(plan.guestIdentity)} .people-remove-cancel`);
  await moderator.waitForSelector(`${row(plan.guestIdentity)} .people-confirm`, { state: "hidden" });
  await moderator.click(`${row(plan.guestIdentity)} .people-remove`);
  await moderator.click(`${row(plan.guestIdentity)} .people-remove-confirm`);
  await screen(guest, "removed");
  seen.removedText = await guest.textContent("#app");
  await shot(guest, "m2-removed");
  await moderator.waitForSelector(row(plan.guestIdentity), { state: "detached" });
  step("the guest was removed");

  await guest.click("#rejoin");
  await screen(guest, "room");
  await moderator.waitForSelector(row(plan.guestIdentity));
  // The microphone the moderator muted stays off on the way back in.
  seen.guestMicOffAfterRejoin = await guest.$eval("#toggle-mic", (b) => b.getAttribute("aria-pressed"));
  step("the guest came back");

  // Locks: the guest's microphone (their page stops offering it), lifted again; then everyone's
  // cameras, but the moderator's.
  const lockedRow = `${row(plan.guestIdentity)}[data-mic-locked="true"]`;
  await moderator.click(`${row(plan.guestIdentity)} .people-lock-mic`);
  await guest.waitForSelector("#toggle-mic", { state: "hidden" });
  seen.guestLockedToast = await toastText(guest);
  await moderator.waitForSelector(lockedRow);
  seen.lockedRowMic = await moderator.textContent(`${row(plan.guestIdentity)} .people-mic`);
  seen.lockedRowButton = await moderator.textContent(`${row(plan.guestIdentity)} .people-lock-mic .words`);
  await shot(moderator, "m6-locked");
  await moderator.click(`${row(plan.guestIdentity)} .people-lock-mic`);
  await guest.waitForSelector("#toggle-mic", { state: "visible" });
  seen.guestUnlockedToast = await toastText(guest);
  await moderator.waitForSelector(lockedRow, { state: "detached" });
  step("the guest's microphone was locked and unlocked");

  seen.cameraSwitchAtFirst = await moderator.isChecked('#people-locks input[data-service="webcam"]');
  await moderator.check('#people-locks input[data-service="webcam"]');
  for (const page of [guest, pest]) await page.waitForSelector("#toggle-camera", { state: "hidden" });
  seen.moderatorCameraOffered = await moderator.isVisible("#toggle-camera");
  await moderator.waitForFunction(() => document.querySelector(".toast")?.textContent?.includes("Cameras"));
  seen.everyoneLockedToast = await toastText(moderator);
  await moderator.uncheck('#people-locks input[data-service="webcam"]');
  for (const page of [guest, pest]) await page.waitForSelector("#toggle-camera", { state: "visible" });
  step("everyone's cameras were locked and unlocked");

  // Chat: the guest writes to everyone; the moderator's Chat shows it as unread, then in the
  // panel under the guest's name. A chat lock (the backend's call) stops the guest writing.
  await guest.click("#toggle-chat");
  await guest.fill("#chat-input", "Hello, everyone!");
  await guest.press("#chat-input", "Enter");
  await guest.waitForSelector('#chat .chat-message[data-mine="true"]');
  await moderator.waitForSelector("#toggle-chat .ctl-badge:not([hidden])");
  seen.moderatorUnread = await moderator.textContent("#toggle-chat .ctl-badge");
  await moderator.click("#toggle-chat");
  await moderator.waitForSelector("#chat .chat-message");
  // Each chat message `selector` finds on `page`, as [from, text].
  const chatEntries = (page, selector) =>
    page.$$eval(selector, (items) =>
      items.map((m) => [m.querySelector(".chat-from").textContent, m.querySelector(".chat-text").textContent]),
    );
  // The backend's lock call on the guest's `service` (plugNmeet's updateLockSettings).
  const lockGuest = async (service, direction) => {
    const answer = await fetch(`${plan.base}/api/updateLockSettings`, {
      method: "POST",
      headers: { Authorization: plan.moderator, "Content-Type": "application/json" },
      body: JSON.stringify({ user_id: plan.guestIdentity, service, direction }),
    });
    return answer.json();
  };
  seen.moderatorChat = await chatEntries(moderator, "#chat .chat-message");
  await shot(moderator, "m7-chat");
  // Locked from the guest's row in People, unlocked by the backend's call.
  await moderator.click(`${row(plan.guestIdentity)} .people-lock-chat`);
  await guest.waitForSelector("#chat-input:disabled");
  await moderator.waitForSelector(`${row(plan.guestIdentity)}[data-chat-locked="true"]`);
  seen.lockedChatButton = await moderator.textContent(`${row(plan.guestIdentity)} .people-lock-chat .words`);
  seen.guestChatLockedToast = await toastText(guest);
  seen.guestChatLockedNote = await guest.isVisible("#chat .chat-locked");
  seen.chatLockAnswer = await lockGuest("chat", "unlock");
  await guest.waitForSelector("#chat-input:enabled");
  await moderator.click("#toggle-chat");
  step("the guest and the moderator chat, and the guest's chat is locked and unlocked");

  // Private chat: the guest writes to the moderator alone, who sees it marked private; the other
  // guest, who then hears the moderator's next message to everyone, never sees it. The
  // backend's privateChat lock takes the choice from the guest, and its unlock gives it back.
  seen.recipients = await guest.$$eval("#chat-to option", (options) => options.map((o) => o.textContent));
  await guest.selectOption("#chat-to", plan.moderatorIdentity);
  await guest.fill("#chat-input", "Just between us.");
  await guest.press("#chat-input", "Enter");
  await guest.waitForSelector('#chat .chat-message[data-mine="true"][data-private="true"]');
  seen.guestPrivateSent = await guest.textContent('#chat .chat-message[data-private="true"] .chat-from');
  await moderator.click("#toggle-chat");
  await moderator.waitForSelector('#chat .chat-message[data-private="true"]');
  seen.moderatorPrivate = await chatEntries(moderator, '#chat .chat-message[data-private="true"]');
  await moderator.fill("#chat-input", "Back to everyone.");
  await moderator.press("#chat-input", "Enter");
  await pest.click("#toggle-chat");
  await pest.waitForFunction(() =>
    [...document.querySelectorAll("#chat .chat-text")].some((t) => t.textContent === "Back to everyone."),
  );
  seen.pestChat = await pest.$$eval("#chat .chat-text", (items) => items.map((m) => m.textContent));
  await pest.click("#toggle-chat");
  await moderator.click("#toggle-chat");
  seen.privateLockAnswer = await lockGuest("privateChat", "lock");
  await guest.waitForSelector("#chat-to:disabled");
  seen.lockedRecipient = await guest.$eval("#chat-to", (select) => select.value);
  await lockGuest("privateChat", "unlock");
  await guest.waitForSelector("#chat-to:enabled");
  await guest.click("#toggle-chat");
  step("the guest writes to the moderator alone, and the private chat is locked and unlocked");

  // Hands: the guest raises theirs; the moderator is told, sees it, and lowers it; the guest
  // is told.
  await guest.click("#toggle-hand");
  await guest.waitForSelector('#toggle-hand[aria-pressed="true"]');
  await moderator.waitForSelector(`${row(plan.guestIdentity)}[data-hand="raised"]`);
  await moderator.waitForFunction(() => document.querySelector(".toast")?.textContent?.includes("raised their hand"));
  seen.moderatorHandToast = await toastText(moderator);
  seen.moderatorTileHand = await moderator.isVisible(
    `.tile[data-identity="${plan.guestIdentity}"][data-source="camera"] .hand`,
  );
  await shot(moderator, "m8-hand");
  await moderator.click(`${row(plan.guestIdentity)} .people-lower-hand`);
  await guest.waitForSelector('#toggle-hand[aria-pressed="false"]');
  seen.guestHandToast = await toastText(guest);
  seen.moderatorTileHandAfter = await moderator.isVisible(
    `.tile[data-identity="${plan.guestIdentity}"][data-source="camera"] .hand`,
  );
  step("the guest raised a hand, and the moderator lowered it");

  await moderator.click(`${row(plan.pestIdentity)} .people-remove`);
  await moderator.check(`${row(plan.pestIdentity)} .people-block`);
  await shot(moderator, "m3-remove-and-block");
  await moderator.click(`${row(plan.pestIdentity)} .people-remove-confirm`);
  await screen(pest, "removed");
  seen.moderatorToast = await toastText(moderator);
  await pest.click("#rejoin");
  await pest.waitForSelector('#app[data-screen="error"][data-error="blocked"]');
  seen.blockedText = await pest.textContent("#app");
  await shot(pest, "m4-blocked");
  await moderator.waitForSelector(row(plan.pestIdentity), { state: "detached" });
  seen.peopleTitleAfter = await moderator.textContent("#people-title");
  step("the other was removed and blocked");

  const body = JSON.stringify({
    room_id: plan.roomId,
    notification_msg: { text: "We close in five minutes.", type: "NATS_SYSTEM_NOTIFICATION_WARNING" },
  });
  const answer = await fetch(`${plan.base}/auth/room/broadcastToRoom`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "API-KEY": plan.apiKey,
      "HASH-SIGNATURE": createHmac("sha256", plan.apiSecret).update(body).digest("hex"),
    },
    body,
  });
  seen.broadcastAnswer = await answer.json();
  for (const [name, page] of [["moderator", moderator], ["guest", guest]]) {
    await page.waitForSelector('.notice[data-level="warning"]');
    seen[`${name}Notice`] = await page.textContent(".notice");
  }
  await shot(guest, "m5-notice");
  step("the backend's notice reached both pages");
});
