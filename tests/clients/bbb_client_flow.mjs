// Drives edgemeet's BigBlueButton-compatible API with an unchanged third-party BBB client,
// bigbluebutton-js (npm; installed by scripts/bootstrap.sh, NODE_MODULES_DIR names it), as a BBB
// integration would: create (twice), join by password, the monitoring calls, guest policies,
// end. It signs with
// SHA-1, the BBB default. Prints each answer as the client parsed it, one JSON line per step,
// then `{"done": ...}` with what the Rust side checks further.
//
// Usage: node bbb_client_flow.mjs <edge base URL> <api key> <api secret> <meeting id>
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(join(process.env.NODE_MODULES_DIR, "noop.js"));
const bbb = require("bigbluebutton-js");

const [base, apiKey, secret, meetingID] = process.argv.slice(2);
const api = bbb.api(`${base}/${apiKey}/bigbluebutton`, secret);
const call = (url) => bbb.http(url);

function expect(condition, what, answer) {
  if (!condition) {
    console.error(`FAILED: ${what}: ${JSON.stringify(answer)}`);
    process.exit(1);
  }
}

// bigbluebutton-js's XML parser leaves entities as they are (`&amp;`), so the names compared
// here have none; the Rust side checks the escaping on the raw answers.
const created = await call(
  api.administration.create("Algebra", meetingID, {
    attendeePW: "ap-secret",
    moderatorPW: "mp-secret",
    record: true,
    welcome: "Welcome to %%CONFNAME%%",
    "meta_bbb-origin": "Moodle",
    "meta_bbb-context-name": "Course 42",
  }),
);
console.log(JSON.stringify({ created }));
expect(created.returncode === "SUCCESS", "create", created);
expect(String(created.meetingID) === meetingID, "create echoes the meeting id", created);
expect(created.moderatorPW === "mp-secret", "create keeps the moderator password", created);

const again = await call(api.administration.create("Algebra", meetingID, {}));
const other = await call(
  api.administration.create("Algebra", meetingID, { moderatorPW: "other" }),
);
console.log(JSON.stringify({ again, other }));
expect(again.returncode === "SUCCESS", "a second create", again);
expect(again.messageKey === "duplicateWarning", "a second create is a duplicate", again);
expect(again.internalMeetingID === created.internalMeetingID, "the same session", again);
expect(again.moderatorPW === "mp-secret", "the first passwords stay", again);
expect(other.returncode === "FAILED" && other.messageKey === "idNotUnique", "other passwords: another meeting", other);

const moderator = await call(
  // Node's querystring leaves `'` unencoded, and signs it so (Workers hands it on as %27).
  api.administration.join("Ada O'Lovelace", meetingID, "mp-secret", {
    redirect: false,
    userID: "ada-1",
  }),
);
const viewer = await call(
  api.administration.join("Bob", meetingID, "ap-secret", { redirect: false }),
);
const intruder = await call(
  api.administration.join("Eve", meetingID, "guess", { redirect: false }),
);
console.log(JSON.stringify({ moderator, viewer, intruder }));
expect(moderator.returncode === "SUCCESS" && moderator.url.includes("/?access_token="), "moderator join", moderator);
expect(viewer.returncode === "SUCCESS", "viewer join", viewer);
expect(intruder.returncode === "FAILED" && intruder.messageKey === "invalidPassword", "a wrong password is refused", intruder);

const running = await call(api.monitoring.isMeetingRunning(meetingID));
const info = await call(api.monitoring.getMeetingInfo(meetingID));
const meetings = await call(api.monitoring.getMeetings());
console.log(JSON.stringify({ running, info, meetings }));
expect(running.returncode === "SUCCESS" && running.running === false, "not running before anyone is in", running);
expect(info.returncode === "SUCCESS" && info.meetingName === "Algebra", "meeting info", info);
expect(info.metadata["bbb-origin"] === "Moodle" && info.metadata["bbb-context-name"] === "Course 42", "meta kept", info);
expect(
  meetings.meetings.some((m) => m.internalMeetingID === created.internalMeetingID),
  "getMeetings lists it",
  meetings,
);

const recordings = await call(api.recording.getRecordings({ meetingID }));
console.log(JSON.stringify({ recordings }));
expect(recordings.returncode === "SUCCESS" && recordings.messageKey === "noRecordings", "no recordings yet", recordings);

const wrongEnd = await call(api.administration.end(meetingID, "ap-secret"));
console.log(JSON.stringify({ wrongEnd }));
expect(wrongEnd.returncode === "FAILED", "end needs the moderator password", wrongEnd);

// Guest policies, decided as BBB decides them: under ASK_MODERATOR a guest waits, under
// ALWAYS_DENY one is turned away, and a user who joins with guest=false comes in under both.
const guestPolicies = {};
for (const guestPolicy of ["ASK_MODERATOR", "ALWAYS_DENY"]) {
  const id = `${meetingID} ${guestPolicy}`;
  const made = await call(api.administration.create("Lobby", id, { guestPolicy }));
  const guest = await call(api.administration.join("Gina", id, "", { role: "VIEWER", guest: true, redirect: false }));
  const member = await call(api.administration.join("Vic", id, "", { role: "VIEWER", guest: false, redirect: false }));
  guestPolicies[guestPolicy] = { made, guest, member };
  await call(api.administration.end(id, made.moderatorPW));
}
console.log(JSON.stringify({ guestPolicies }));
const { ASK_MODERATOR: ask, ALWAYS_DENY: deny } = guestPolicies;
expect(ask.guest.returncode === "SUCCESS" && ask.guest.guestStatus === "WAIT", "a guest waits", ask.guest);
expect(ask.member.guestStatus === "ALLOW", "a user who is no guest comes in", ask.member);
expect(deny.guest.returncode === "FAILED" && deny.guest.messageKey === "guestDeniedAccess", "a guest is turned away", deny.guest);
expect(deny.member.guestStatus === "ALLOW", "a user who is no guest comes in", deny.member);

console.log(
  JSON.stringify({
    done: {
      internalMeetingID: created.internalMeetingID,
      moderatorUrl: moderator.url,
      viewerUrl: viewer.url,
      endUrl: api.administration.end(meetingID, "mp-secret"),
      runningUrl: api.monitoring.isMeetingRunning(meetingID),
      infoUrl: api.monitoring.getMeetingInfo(meetingID),
    },
  }),
);
