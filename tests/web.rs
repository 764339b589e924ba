//! The join page in a real browser: headless Debian Chromium, driven by Playwright
//! (`tests/clients/join_page_browsers.mjs`), against `edgemeet up` (the component in the local
//! host) and its real LiveKit server. Join links come from the API, as a CMS plugin makes them.
//! A third, hidden user (as a recorder bot joins) watches without publishing or being shown.
//!
//! Screenshots of the key screens are kept under `$CARGO_TARGET_DIR/test-artefacts/web/` (and
//! `web-waiting/` for the waiting room, `web-moderation/` for a moderator keeping order).

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::recorder::{
    number, probe, stream, video_packet_times, Nginx, PlannedRecorder, Service,
};
use support::{hs256, now_secs, unique, System};

/// The tests here take turns: each runs its own system and several browsers, and two at once
/// would starve each other on a small machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs a browser driver from `tests/clients/` with `plan`; what it saw (its last JSON line).
fn drive(script: &str, plan: &Value) -> Value {
    let output = Command::new("node")
        .arg(support::repo_root().join("tests/clients").join(script))
        .arg(plan.to_string())
        .env(
            "NODE_MODULES_DIR",
            edgemeet::cache_dir().join("node").join("node_modules"),
        )
        .output()
        .expect("run node (scripts/bootstrap.sh installs playwright-core)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from the browser driver ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    println!("browser driver saw: {seen:#}");
    seen
}

/// The pages logged no errors but `expected`; once the meeting was being ended, only refusals
/// (a join-token renewal or a list poll already on its way when the session ended gets a 401).
fn assert_console_clean(seen: &Value, expected: &[&str]) {
    let errors: Vec<Value> = seen["consoleErrors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| !e.as_str().is_some_and(|e| expected.contains(&e)))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let at_end = seen["consoleErrorsAtEnd"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        at_end.iter().all(|e| e
            .as_str()
            .is_some_and(|e| e.ends_with("status of 401 (Unauthorized)"))),
        "console errors at the end: {at_end:#?}"
    );
}

/// Asserts that a browser driver with a recorder behind the edge got through; when it did not,
/// the failure carries the recorder's and the edge's logs, and `more` (another part's log).
fn assert_driven_through(seen: &Value, recorder: &mut Service, system: &System, more: &str) {
    if seen["ok"] != true {
        recorder.wait_log(0, "", Duration::from_secs(1));
    }
    assert_eq!(
        seen["ok"],
        true,
        "the browsers did not get through: {seen:#}\nrecorder log:\n{}\nedge log:\n{}{more}",
        recorder.log.join("\n"),
        system.stderr()
    );
}

/// The console errors of the recorder jobs the edge refused (503) before it had heard the
/// recorder's first heartbeat: one for each of `attempts` but the last, which was taken.
fn refused_before_the_recorder_was_heard(attempts: &Value) -> Vec<&'static str> {
    (1..attempts.as_u64().unwrap_or(0))
        .map(|_| "moderator: Failed to load resource: the server responded with a status of 503 (Service Unavailable)")
        .collect()
}

/// Each of `names` is a screenshot the driver took in `dir` (`NAME.png`, not empty).
fn assert_screenshots(dir: &std::path::Path, names: &[&str]) {
    for name in names {
        let file = dir.join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&file).is_ok_and(|m| m.len() > 1000),
            "screenshot {} missing",
            file.display()
        );
    }
}

/// An end-to-end encrypted room `prefix-…` titled `title`, its LiveKit room's name, and a LiveKit
/// token to ask that LiveKit room what it forwards (ListParticipants).
fn encrypted_room(system: &System, prefix: &str, title: &str) -> (String, String, String) {
    let room = unique(prefix);
    let info = system.target.create_room(
        &room,
        json!({"metadata": {"room_title": title, "room_features": {
            "end_to_end_encryption_features": {"is_enabled": true}}}}),
    );
    let livekit_room = format!("{room}.{}", info["sid"].as_str().expect("sid"));
    let livekit_token = hs256(
        &system.livekit_secret,
        &json!({"iss": system.livekit_key, "nbf": now_secs() - 10, "exp": now_secs() + 600,
                "video": {"roomAdmin": true, "room": livekit_room}}),
    );
    (room, livekit_room, livekit_token)
}

#[test]
fn two_browsers_meet_a_hidden_user_watches_a_late_link_is_refused_and_the_moderator_ends_it() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let system = System::start("web", "");
    let target = &system.target;
    let room = unique("meet");
    target.create_room(&room, json!({"metadata": {"room_title": "Weekly sync"}}));
    let moderator = target.join_token(&room, "mod-1", true, false);
    let guest = target.join_token(&room, "guest-1", false, false);
    let hidden = target.join_token(&room, "observer-1", false, true);
    // A link whose token expired a minute ago, signed like any other.
    let expired = hs256(
        &target.api_secret,
        &json!({"iss": "plugnmeet", "sub": "late-1", "nbf": now_secs() - 900,
                "exp": now_secs() - 60, "name": "Late", "user_id": "late-1",
                "room_id": room, "is_admin": false, "is_hidden": false}),
    );

    let shots = support::artefacts_dir("web");
    let plan = json!({
        "base": target.base,
        "moderator": moderator, "moderatorIdentity": "mod-1",
        "guest": guest, "guestIdentity": "guest-1",
        "hidden": hidden,
        "expired": expired,
        "shots": shots,
    });
    let seen = drive("join_page_browsers.mjs", &plan);
    println!("screenshots in {}", shots.display());
    assert_eq!(
        seen["ok"], true,
        "the browsers did not get through: {seen:#}"
    );

    // The join token left the address bar at once.
    let url = seen["moderatorUrlAfterLoad"].as_str().unwrap_or_default();
    assert!(
        !url.contains("access_token"),
        "token still in the URL: {url}"
    );
    let cookies = seen["moderatorCookies"].as_str().unwrap_or_default();
    assert!(
        !cookies.contains("pnm_access_token"),
        "token in a cookie, sent with every request: {cookies}"
    );
    assert_eq!(seen["moderatorTokenKept"], true, "{seen}");
    // Each sees two tiles (itself and the other); only the moderator can end the meeting.
    assert_eq!(seen["moderatorTiles"], 2, "{seen}");
    assert_eq!(seen["guestTiles"], 2, "{seen}");
    assert_eq!(seen["moderatorHasEndButton"], true);
    // The hidden user sees both, publishes nothing and is seen by no one.
    assert_eq!(seen["hiddenTiles"], 2, "{seen}");
    assert_eq!(seen["hiddenHasMicButton"], false, "{seen}");
    assert_eq!(seen["moderatorTilesWithHidden"], 2, "{seen}");
    assert_eq!(seen["guestHasEndButton"], false);
    // The room's default locks: screen sharing for the moderator only; the camera for both.
    assert_eq!(seen["moderatorCanShareScreen"], true, "{seen}");
    assert_eq!(seen["guestCanShareScreen"], false, "{seen}");
    assert_eq!(seen["guestHasCameraButton"], true, "{seen}");
    assert_eq!(
        seen["guestJoinedByKeyboard"], true,
        "Join not reachable by Tab"
    );
    assert_eq!(
        seen["guestOverflowsPhone"], false,
        "the room overflows a phone screen"
    );
    assert_eq!(seen["micPressedAfterToggle"], "true", "{seen}");
    assert!(
        seen["expiredText"]
            .as_str()
            .is_some_and(|t| t.to_lowercase().contains("expired")),
        "{seen}"
    );
    assert_console_clean(&seen, &[]);
    assert_screenshots(
        &shots,
        &[
            "3-room-desktop",
            "4-room-phone",
            "5-expired-link",
            "7-ended-phone",
        ],
    );

    // The meeting really ended: the edge says so, and it is a past room.
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], false, "{active}");
    let load = &seen["moderatorLoad"];
    // For scripts/bench-page.sh.
    std::fs::write(shots.join("load.json"), load.to_string()).expect("write load.json");
    assert!(
        load["connectedMs"].as_f64().is_some_and(|ms| ms > 0.0),
        "{load}"
    );
    assert!(
        load["transferBytes"].as_u64().is_some_and(|b| b > 1000),
        "{load}"
    );
}

/// The waiting room in the browser: a guest waits until the moderator, whose page lists who
/// waits and changes what they read, lets them in; another is turned away and told so.
#[test]
fn guests_wait_until_the_moderator_lets_them_in_or_turns_them_away() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Join tokens live a minute here (the pages renew theirs 5 s after they start).
    let system = System::start_with("web-waiting", "token_validity_secs = 60", "");
    let target = &system.target;
    let room = unique("lobby");
    target.create_room(
        &room,
        json!({"metadata": {"room_title": "Office hours", "room_features": {
            "waiting_room_features": {"is_active": true,
                "waiting_room_msg": "The teacher lets you in shortly."}}}}),
    );
    let moderator = target.join_token(&room, "teacher-1", true, false);
    let guest = target.join_token(&room, "student-1", false, false);
    let refused = target.join_token(&room, "stranger-1", false, false);
    let shots = support::artefacts_dir("web-waiting");
    let seen = drive(
        "waiting_room_browsers.mjs",
        &json!({
            "base": target.base,
            "moderator": moderator, "moderatorIdentity": "teacher-1",
            "guest": guest, "guestIdentity": "student-1",
            "refused": refused, "refusedIdentity": "stranger-1",
            "newMessage": "Five more minutes, please.",
            "shots": shots,
        }),
    );
    assert_eq!(
        seen["ok"], true,
        "the browsers did not get through: {seen:#}"
    );
    assert_eq!(seen["listHiddenAtFirst"], true, "{seen}");
    let waiting_text = seen["guestWaitingText"].as_str().unwrap_or_default();
    assert!(
        waiting_text.contains("Waiting for a moderator")
            && waiting_text.contains("The teacher lets you in shortly."),
        "{waiting_text}"
    );
    // Both, longest waiting first (asked in the same second, they are in user id order).
    let listed = seen["listedNames"].clone();
    assert!(
        listed == json!(["User student-1", "User stranger-1"])
            || listed == json!(["User stranger-1", "User student-1"]),
        "{seen}"
    );
    assert_eq!(seen["listTitle"], "Waiting to join (2)", "{seen}");
    assert_eq!(
        seen["messageShownToModerator"], "The teacher lets you in shortly.",
        "{seen}"
    );
    assert_eq!(
        seen["moderatorMessageToast"], "Those waiting now read your message.",
        "{seen}"
    );
    let after = seen["guestWaitingTextAfter"].as_str().unwrap_or_default();
    assert!(
        after.contains("Five more minutes, please.") && !after.contains("shortly"),
        "{seen}"
    );
    assert_eq!(seen["guestStillWaiting"], true, "{seen}");
    assert!(
        seen["refusedText"]
            .as_str()
            .is_some_and(|t| t.contains("cannot join")),
        "{seen}"
    );
    assert_eq!(seen["listHiddenAfter"], true, "{seen}");
    // The moderator's page renewed its join token, and ended the meeting with a renewed one:
    // the same user and rights, a later expiry.
    let first = support::jwt_claims(&moderator);
    for key in ["moderatorRenewedToken", "endRoomAuthorization"] {
        let token = seen[key].as_str().unwrap_or_default();
        assert!(!token.is_empty() && token != moderator, "{key}: {seen}");
        let then = support::jwt_claims(token);
        assert!(
            then["exp"].as_i64() > first["exp"].as_i64(),
            "{first} {then}"
        );
        assert_eq!(
            (then["sub"].clone(), then["is_admin"].clone()),
            (json!("teacher-1"), json!(true))
        );
    }
    // The one error expected: Chromium logs the 401 that tells the user turned away so.
    assert_console_clean(
        &seen,
        &["refused: Failed to load resource: the server responded with a status of 401 (Unauthorized)"],
    );
    assert_screenshots(
        &shots,
        &["w1-waiting-phone", "w2-waiting-list", "w3-turned-away"],
    );
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], false, "{active}");
}

/// A moderator keeps order from the page: mutes a guest (whose page says so), removes them
/// (they come back), locks and unlocks their microphone and everyone's cameras (the guests'
/// pages stop offering them, and offer them again), reads their chat message and has their
/// chat locked (their page stops letting them write), lowers the hand they raised, then
/// removes and blocks another, whose page is refused on the way back, and whose LiveKit token,
/// still valid, no longer keeps them in LiveKit either: the edge removes them again as soon as
/// the sidecar reports the join.
/// The backend's notice (`room/broadcastToRoom`) shows on the pages in the meeting.
#[test]
fn a_moderator_mutes_removes_and_blocks_from_the_page() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let system = System::start("web-moderation", "");
    let target = &system.target;
    let room = unique("order");
    target.create_room(&room, json!({"metadata": {"room_title": "Town hall"}}));
    let moderator = target.join_token(&room, "chair-1", true, false);
    let guest = target.join_token(&room, "guest-1", false, false);
    let pest = target.join_token(&room, "pest-1", false, false);
    let shots = support::artefacts_dir("web-moderation");
    // Where the driver leaves the blocked user's LiveKit session (not in its printed output:
    // it holds a token).
    let livekit_file = std::env::temp_dir().join(unique("pest-livekit"));
    let seen = drive(
        "moderation_browsers.mjs",
        &json!({
            "base": target.base,
            "moderator": moderator, "moderatorIdentity": "chair-1",
            "guest": guest, "guestIdentity": "guest-1",
            "pest": pest, "pestIdentity": "pest-1",
            "pestLiveKitFile": livekit_file,
            "roomId": room, "apiKey": target.api_key, "apiSecret": target.api_secret,
            "shots": shots,
        }),
    );
    assert_eq!(
        seen["ok"],
        true,
        "the browsers did not get through: {seen:#}\nedge log:\n{}",
        system.stderr()
    );
    assert_eq!(seen["guestHasPeople"], false, "{seen}");
    assert_eq!(seen["peopleHiddenAtFirst"], true, "{seen}");
    assert_eq!(seen["peopleTitle"], "People (3)", "{seen}");
    assert_eq!(
        seen["listedNames"],
        json!(["User guest-1", "User pest-1"]),
        "{seen}"
    );
    assert_eq!(
        seen["guestToast"], "A moderator muted your microphone.",
        "{seen}"
    );
    assert_eq!(seen["muteHiddenAfter"], true, "{seen}");
    assert!(
        seen["confirmText"]
            .as_str()
            .is_some_and(|t| t.contains("Remove User guest-1 from the meeting?")),
        "{seen}"
    );
    assert!(
        seen["removedText"]
            .as_str()
            .is_some_and(|t| t.contains("A moderator removed you")),
        "{seen}"
    );
    assert_eq!(seen["guestMicOffAfterRejoin"], "true", "{seen}");
    assert_eq!(
        seen["guestLockedToast"], "A moderator locked your microphone.",
        "{seen}"
    );
    assert_eq!(seen["lockedRowMic"], "Microphone locked", "{seen}");
    assert_eq!(seen["lockedRowButton"], "Unlock mic", "{seen}");
    assert_eq!(
        seen["guestUnlockedToast"], "A moderator unlocked your microphone.",
        "{seen}"
    );
    assert_eq!(seen["cameraSwitchAtFirst"], false, "{seen}");
    assert_eq!(seen["moderatorCameraOffered"], true, "{seen}");
    assert_eq!(
        seen["everyoneLockedToast"], "Cameras are locked for everyone else.",
        "{seen}"
    );
    assert_eq!(seen["moderatorUnread"], "1", "{seen}");
    assert_eq!(
        seen["moderatorChat"],
        json!([["User guest-1", "Hello, everyone!"]]),
        "{seen}"
    );
    assert_eq!(seen["lockedChatButton"], "Unlock chat", "{seen}");
    assert_eq!(seen["chatLockAnswer"]["status"], true, "{seen}");
    assert_eq!(
        seen["guestChatLockedToast"], "A moderator turned off chat for you.",
        "{seen}"
    );
    assert_eq!(seen["guestChatLockedNote"], true, "{seen}");
    // Private chat.
    let recipients = seen["recipients"].as_array().expect("recipients");
    assert_eq!(recipients.len(), 3, "everyone and the two others: {seen}");
    assert_eq!(recipients[0], "Everyone", "{seen}");
    let sent = seen["guestPrivateSent"].as_str().expect("sent");
    assert!(
        sent.starts_with("You to ") && sent.ends_with("(privately)"),
        "{seen}"
    );
    assert_eq!(
        seen["moderatorPrivate"],
        json!([["User guest-1 (privately)", "Just between us."]]),
        "{seen}"
    );
    let pest_chat: Vec<&str> = seen["pestChat"]
        .as_array()
        .expect("pestChat")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        pest_chat.contains(&"Back to everyone.") && !pest_chat.contains(&"Just between us."),
        "a private message reached another guest: {seen}"
    );
    assert_eq!(seen["privateLockAnswer"]["status"], true, "{seen}");
    assert_eq!(
        seen["lockedRecipient"], "",
        "locked: to everyone only: {seen}"
    );
    assert_eq!(
        seen["moderatorHandToast"], "User guest-1 raised their hand.",
        "{seen}"
    );
    assert_eq!(seen["moderatorTileHand"], true, "{seen}");
    assert_eq!(
        seen["guestHandToast"], "A moderator lowered your hand.",
        "{seen}"
    );
    assert_eq!(seen["moderatorTileHandAfter"], false, "{seen}");
    assert_eq!(
        seen["moderatorToast"], "User pest-1 was removed and cannot come back.",
        "{seen}"
    );
    assert!(
        seen["blockedText"]
            .as_str()
            .is_some_and(|t| t.contains("blocked")),
        "{seen}"
    );
    assert_eq!(seen["peopleTitleAfter"], "People (2)", "{seen}");
    assert_eq!(seen["broadcastAnswer"]["status"], true, "{seen}");
    for page in ["moderatorNotice", "guestNotice"] {
        assert!(
            seen[page]
                .as_str()
                .is_some_and(|t| t.contains("Warning: We close in five minutes.")),
            "{page}: {seen}"
        );
    }
    // Expected: Chromium logs the 401 that tells the blocked user so.
    assert_console_clean(
        &seen,
        &["pest: Failed to load resource: the server responded with a status of 401 (Unauthorized)"],
    );
    assert_screenshots(
        &shots,
        &[
            "m1-people",
            "m2-removed",
            "m3-remove-and-block",
            "m4-blocked",
            "m5-notice",
            "m6-locked",
            "m7-chat",
            "m8-hand",
        ],
    );

    // Back with the LiveKit token the page had before the block: LiveKit lets them in, and the
    // edge has them out again.
    let livekit: Value = serde_json::from_slice(
        &std::fs::read(&livekit_file).expect("the blocked user's LiveKit session, kept"),
    )
    .expect("json");
    std::fs::remove_file(&livekit_file).expect("remove");
    let back = support::Participant::join(
        livekit["url"].as_str().expect("url"),
        livekit["token"].as_str().expect("token"),
        "none",
    );
    // The edge may remove them before the client has finished publishing (and printed
    // `joined`); LiveKit gives PARTICIPANT_REMOVED only to a participant it had let in.
    let gone = back.expect_line("disconnected", Duration::from_secs(50));
    assert!(gone.contains("PARTICIPANT_REMOVED"), "{gone}");
    assert!(
        system
            .stderr()
            .contains("a blocked user came back with an earlier LiveKit token: removed again"),
        "{}",
        system.stderr()
    );
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], true, "the meeting goes on: {active}");
    target.call("/auth/room/endRoom", &json!({"room_id": room}));
}

/// An end-to-end encrypted meeting: each page plays the other's video, which it can only do
/// by decrypting it with the room's key, while LiveKit reports the tracks it forwards as
/// encrypted (GCM); a page given another key reads nothing and is read by no one; media sent
/// in the clear is not played.
#[test]
fn an_encrypted_meeting_is_readable_only_by_its_pages() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let system = System::start("web-e2ee", "");
    let target = &system.target;
    let (room, livekit_room, livekit_token) = encrypted_room(&system, "secret", "Board meeting");
    let moderator = target.join_token(&room, "chair-1", true, false);
    let guest = target.join_token(&room, "member-1", false, false);
    let intruder = target.join_token(&room, "intruder-1", false, false);
    let plain = target.join_token(&room, "plain-1", false, false);
    let shots = support::artefacts_dir("web-e2ee");
    let seen = drive(
        "encrypted_room_browsers.mjs",
        &json!({
            "base": target.base,
            "moderator": moderator, "moderatorIdentity": "chair-1",
            "guest": guest, "guestIdentity": "member-1",
            "intruder": intruder, "intruderIdentity": "intruder-1",
            "plain": plain, "plainIdentity": "plain-1",
            "livekitHttp": system.livekit_http,
            "livekitRoom": livekit_room,
            "livekitToken": livekit_token,
            "shots": shots,
        }),
    );
    assert_eq!(
        seen["ok"], true,
        "the browsers did not get through: {seen:#}"
    );
    assert_eq!(seen["moderatorMarkedEncrypted"], true, "{seen}");
    // Every track LiveKit forwards (each user's camera and microphone) is encrypted.
    let tracks = seen["livekitTracks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(tracks.len() >= 4, "{seen}");
    for track in &tracks {
        assert_eq!(track["encryption"], "GCM", "{track} in {seen}");
    }
    // With another key, a page sees the tiles but decrypts nothing, and nothing it sends is
    // read.
    assert_eq!(seen["intruderTiles"], 3, "{seen}");
    assert_eq!(seen["intruderPlayedVideo"], false, "{seen}");
    assert_eq!(seen["guestChat"], json!(["For the board only."]), "{seen}");
    assert_eq!(seen["intruderChat"], json!([]), "{seen}");
    assert_eq!(seen["moderatorPlayedIntruder"], false, "{seen}");
    // Media sent in the clear into the encrypted room is not played, and the page says so.
    assert_eq!(seen["moderatorPlayedPlain"], false, "{seen}");
    assert!(
        seen["moderatorBanner"]
            .as_str()
            .is_some_and(|b| b.contains("User plain-1") && b.contains("without encryption")),
        "{seen}"
    );
    assert_console_clean(&seen, &[]);
    assert_screenshots(
        &shots,
        &[
            "e1-encrypted-room",
            "e2-wrong-key",
            "e3-plain-media-refused",
        ],
    );
}

/// The meeting inside a CMS plugin's page: a stand-in for the CMS site, on another origin,
/// renders the page plugNmeet's Moodle and WordPress plugins render from `/auth/getClientFiles`
/// (for the guest, as their versions before late 2025 rendered it);
/// the page takes the plugin's design settings; both users join an encrypted meeting there (the
/// E2EE worker comes from the edge's origin), play each other's video, the guest reloads and is
/// back, and the moderator ends it.
#[test]
fn a_cms_plugin_page_embeds_an_encrypted_meeting() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let system = System::start("web-cms", "");
    let target = &system.target;
    let (room, livekit_room, livekit_token) = encrypted_room(&system, "course", "Course 101");
    let (status, files) = target.call("/auth/getClientFiles", &json!({}));
    assert_eq!(status, 200, "{files}");
    let shots = support::artefacts_dir("web-cms");
    let seen = drive(
        "cms_page_browsers.mjs",
        &json!({
            "base": target.base,
            "js": files["js_files"], "css": files["css_files"],
            "moderator": target.join_token(&room, "teacher-1", true, false),
            "moderatorIdentity": "teacher-1",
            "guest": target.join_token(&room, "student-1", false, false),
            "guestIdentity": "student-1",
            "livekitHttp": system.livekit_http,
            "livekitRoom": livekit_room,
            "livekitToken": livekit_token,
            "shots": shots,
        }),
    );
    assert_eq!(
        seen["ok"], true,
        "the browsers did not get through: {seen:#}"
    );
    // The page ran on the CMS's origin, in the CMS's element, and called the edge's API.
    let cms = seen["cmsOrigin"].as_str().expect("the CMS's origin");
    assert_eq!(seen["pageOrigin"], cms, "{seen}");
    assert_ne!(cms, target.base, "{seen}");
    assert_eq!(seen["mountedInHostElement"], true, "{seen}");
    for user in ["moderator", "guest"] {
        assert_eq!(
            seen[format!("{user}SessionUrl")],
            format!("{}/api/session", target.base),
            "{seen}"
        );
    }
    assert_eq!(
        seen["cmsRequests"],
        json!([
            "/background.svg",
            "/custom.css",
            "/legacy/conference.php",
            "/logo.svg",
            "/mod/plugnmeet/conference.php"
        ]),
        "{seen}"
    );
    // The plugin's design settings (cms_page_browsers.mjs DESIGN); the bad color is ignored.
    assert_eq!(seen["joinButtonColor"], "rgb(194, 24, 91)", "{seen}");
    let design = &seen["design"];
    assert_eq!(design["headerColor"], "rgb(0, 77, 64)", "{seen}");
    assert_eq!(design["footerColor"], "rgb(74, 20, 140)", "{seen}");
    assert_eq!(design["bodyColor"], "rgb(20, 40, 60)", "{seen}");
    assert!(
        design["bodyImage"]
            .as_str()
            .is_some_and(|i| i.contains("/background.svg")),
        "{seen}"
    );
    assert_eq!(design["titleLetterSpacing"], "3px", "{seen}");
    assert_eq!(design["logoWidth"], 80, "{seen}");
    // The plugins' camera resolution reaches LiveKit: 180p from `plugNmeetConfig`, 90p from
    // the older page's global (both below the 320x240 Chromium's fake camera gave here).
    let cameras = &seen["cameras"];
    assert_eq!(cameras["teacher-1"]["height"], 180, "{seen}");
    assert_eq!(cameras["student-1"]["height"], 90, "{seen}");
    // The older plugins' page (classic scripts, globals, `<server>//assets`) works too.
    assert_eq!(seen["guestLogoWidth"], 80, "{seen}");
    assert_eq!(design["sidePanelColor"], "", "{seen}");
    assert_eq!(design["bodyShown"], true, "{seen}");
    // The host site keeps its address bar.
    assert_eq!(seen["urlKeepsToken"], true, "{seen}");
    assert_eq!(seen["encrypted"], true, "{seen}");
    assert_eq!(seen["moderatorTiles"], 2, "{seen}");
    assert_console_clean(&seen, &[]);
    assert_screenshots(&shots, &["c1-cms-room"]);
    let (_, active) = target.call("/auth/room/isRoomActive", &json!({"room_id": room}));
    assert_eq!(active["is_active"], false, "{active}");
}

/// Recording from the page: with a real `recorder-native serve` configured on the edge
/// (`[[recorders]]`), the moderator clicks Record, both pages (the guest's too) show the
/// Recording badge while LiveKit reports the room recorded, the guest has no Record button,
/// Stop recording takes the badge away, and the edge lists the finished recording.
#[test]
fn a_moderator_records_from_the_page() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let planned = PlannedRecorder::new("rec-web", "web-recording-files");
    let system = System::start_with("web-recording", "", &planned.edge_toml());
    let target = &system.target;
    let mut recorder = planned.start(&system, "");
    let room = unique("rec-page");
    target.create_room(
        &room,
        json!({"metadata": {"room_title": "Recorded talk", "room_features": {
            "recording_features": {"is_allow": true}}}}),
    );
    let moderator = target.join_token(&room, "host-1", true, false);
    let guest = target.join_token(&room, "viewer-1", false, false);
    let cohost = target.join_token(&room, "host-2", true, false);
    let shots = support::artefacts_dir("web-recording");
    let seen = drive(
        "recording_browsers.mjs",
        &json!({
            "base": target.base,
            "moderator": moderator, "moderatorIdentity": "host-1",
            "guest": guest, "guestIdentity": "viewer-1",
            "cohost": cohost,
            "recordSeconds": 5,
            "shots": shots,
        }),
    );
    assert_driven_through(&seen, &mut recorder, &system, "");
    // Nothing recorded at first; the moderator is offered Record, the guest nothing.
    assert_eq!(
        seen["badgeBefore"],
        json!({"moderator": false, "guest": false}),
        "{seen}"
    );
    for page in ["moderatorButtonBefore", "cohostButtonBefore"] {
        assert_eq!(
            seen[page],
            json!({"text": "Record", "pressed": "false", "label": "Start recording"}),
            "{page}: {seen}"
        );
    }
    assert_eq!(seen["guestHasRecordButton"], false, "{seen}");
    assert_eq!(seen["guestHasRecordButtonWhileRecording"], false, "{seen}");
    // The start was taken (perhaps after the edge first heard the recorder), and said so.
    assert_eq!(seen["startStatus"], 200, "{seen}");
    assert_eq!(seen["startAnswer"]["status"], true, "{seen}");
    assert_eq!(
        seen["toastAfterStart"], "Recording will start in a moment.",
        "{seen}"
    );
    assert_eq!(
        seen["moderatorButtonRecording"],
        json!({"text": "Stop recording", "pressed": "true", "label": "Stop recording"}),
        "{seen}"
    );
    // Every page, the guest's too, shows that the room is recorded.
    assert_eq!(
        seen["badgeWhileRecording"],
        json!({"moderator": true, "guest": true}),
        "{seen}"
    );
    assert_eq!(seen["badgeText"], "Recording", "{seen}");
    assert_eq!(seen["badgeRole"], "status", "{seen}");
    // The other moderator, who pressed nothing, is offered to stop it, not to start another.
    assert_eq!(
        seen["cohostButtonWhileRecording"],
        json!({"text": "Stop recording", "pressed": "true", "label": "Stop recording"}),
        "{seen}"
    );
    assert_eq!(seen["cohostBadgeText"], "Recording", "{seen}");
    assert_eq!(seen["stopStatus"], 200, "{seen}");
    assert_eq!(seen["stopAnswer"]["status"], true, "{seen}");
    for page in ["moderatorButtonAfter", "cohostButtonAfter"] {
        assert_eq!(
            seen[page],
            json!({"text": "Record", "pressed": "false", "label": "Start recording"}),
            "{page}: {seen}"
        );
    }
    assert_eq!(
        seen["badgeAfter"],
        json!({"moderator": false, "guest": false, "cohost": false}),
        "{seen}"
    );
    // Until the edge has heard the recorder, a start is refused with a 503 the browser logs.
    assert_console_clean(
        &seen,
        &refused_before_the_recorder_was_heard(&seen["recordAttempts"]),
    );
    assert_screenshots(
        &shots,
        &[
            "r1-recording-desktop",
            "r2-recording-phone",
            "r3-stopped-desktop",
            "r4-stopped-phone",
        ],
    );

    // The edge lists the recording once the recorder reports it complete, with its file.
    let record_id = seen["startAnswer"]["record_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!record_id.is_empty(), "{seen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let listing = loop {
        let (status, listing) = target.call(
            "/auth/recording/fetch",
            &json!({"room_ids": [room], "from": 0, "limit": 20, "order_by": "DESC"}),
        );
        assert_eq!(status, 200, "{listing}");
        if listing["status"] == true {
            break listing;
        }
        if Instant::now() >= deadline {
            recorder.wait_log(0, "", Duration::from_secs(1));
            panic!(
                "the recording was never listed: {listing}\nrecorder log:\n{}\nedge log:\n{}",
                recorder.log.join("\n"),
                system.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let list = listing["result"]["recordings_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 1, "{listing}");
    assert_eq!(list[0]["record_id"], record_id.as_str(), "{listing}");
    assert_eq!(list[0]["room_id"], room.as_str(), "{listing}");
    assert!(number(&list[0]["file_size"]) > 0.0, "{listing}");
}

#[test]
fn a_moderator_goes_live_from_the_page() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let nginx = Nginx::start();
    let planned = PlannedRecorder::new("rec-live", "web-live-files");
    let system = System::start_with("web-live", "", &planned.edge_toml());
    let target = &system.target;
    // nginx listens on loopback, which broadcasts may reach only when the operator allows it.
    let mut recorder = planned.start(
        &system,
        "[broadcast]\nallowed_networks = [\"127.0.0.0/8\"]\n",
    );
    let room = unique("live-page");
    target.create_room(&room, json!({"metadata": {"room_title": "Streamed talk"}}));
    let moderator = target.join_token(&room, "host-1", true, false);
    let stream_key = unique("key");
    let flv = nginx.record_dir.join(format!("{stream_key}.flv"));
    let shots = support::artefacts_dir("web-live");
    let seen = drive(
        "broadcast_browsers.mjs",
        &json!({
            "base": target.base,
            "moderator": moderator, "moderatorIdentity": "host-1",
            "rtmpUrl": nginx.base_url, "streamKey": stream_key, "flv": flv,
            "liveSeconds": 5,
            "shots": shots,
        }),
    );
    let nginx_log = format!("\nnginx log:\n{}", nginx.log());
    assert_driven_through(&seen, &mut recorder, &system, &nginx_log);
    // A moderator of a room that is not encrypted is offered Go live; it opens the panel.
    assert_eq!(seen["buttonBefore"]["text"], "Go live", "{seen}");
    assert_eq!(
        seen["buttonBefore"]["label"], "Start a live broadcast",
        "{seen}"
    );
    assert_eq!(seen["buttonBefore"]["expanded"], "false", "{seen}");
    assert_eq!(seen["buttonBefore"]["pressed"], "false", "{seen}");
    assert_eq!(seen["panelShownBefore"], false, "{seen}");
    assert_eq!(seen["panelShownAfterClick"], true, "{seen}");
    assert_eq!(seen["buttonPanelOpen"]["expanded"], "true", "{seen}");
    assert_eq!(seen["focusedAfterOpen"], "live-url", "{seen}");
    assert_eq!(seen["keyInputType"], "password", "{seen}");
    // A web address is refused in the panel, and nothing goes to the edge.
    assert_eq!(
        seen["badUrlError"],
        json!({"shown": true, "role": "alert",
               "text": "The stream URL starts with rtmp:// or rtmps://."}),
        "{seen}"
    );
    assert_eq!(seen["requestsAfterBadUrl"], 0, "{seen}");
    assert_eq!(seen["buttonAfterBadUrl"]["pressed"], "false", "{seen}");
    // The start names nginx with the key appended, was taken, and said so.
    let rtmp_url = format!("{}/{stream_key}", nginx.base_url);
    assert_eq!(
        seen["startRequest"],
        json!({"task": "START_RTMP", "rtmp_url": rtmp_url}),
        "{seen}"
    );
    assert_eq!(seen["startStatus"], 200, "{seen}");
    assert_eq!(seen["startAnswer"]["status"], true, "{seen}");
    assert_eq!(
        seen["toastAfterStart"], "The broadcast will start in a moment.",
        "{seen}"
    );
    assert_eq!(
        seen["buttonLive"],
        json!({"text": "Stop live", "pressed": "true", "label": "Stop the live broadcast",
               "expanded": "false"}),
        "{seen}"
    );
    assert_eq!(seen["panelShownWhileLive"], false, "{seen}");
    assert_eq!(
        seen["keyLeftInPage"], "",
        "the stream key stayed in the form: {seen}"
    );
    // Going live is not recording: the Record button is unchanged, and the badge says Live.
    assert_eq!(seen["recordButtonWhileLive"], "Record", "{seen}");
    assert_eq!(seen["badgeWhileLive"], "Live", "{seen}");
    // nginx played the stream live: H.264 video and AAC audio.
    let live = &seen["liveProbe"];
    assert!(live["error"].is_null(), "ffprobe could not play it: {seen}");
    assert_eq!(stream(live, "audio")["codec_name"], "aac", "{seen}");
    assert!(
        live["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["codec_name"] == "h264")),
        "no video while live (nginx recorded {} video packets, the last at {:.2} s): {seen}",
        video_packet_times(&flv).len(),
        video_packet_times(&flv).into_iter().fold(0.0, f64::max)
    );
    // Stopped: the button says Go live again.
    assert_eq!(seen["stopRequest"], json!({"task": "STOP_RTMP"}), "{seen}");
    assert_eq!(seen["stopStatus"], 200, "{seen}");
    assert_eq!(seen["stopAnswer"]["status"], true, "{seen}");
    assert_eq!(
        seen["buttonAfter"],
        json!({"text": "Go live", "pressed": "false", "label": "Start a live broadcast",
               "expanded": "false"}),
        "{seen}"
    );
    assert_eq!(seen["panelShownAfterStop"], false, "{seen}");
    // Until the edge has heard the recorder, a start is refused with a 503 the browser logs.
    assert_console_clean(
        &seen,
        &refused_before_the_recorder_was_heard(&seen["startAttempts"]),
    );
    assert_screenshots(
        &shots,
        &[
            "l1-bad-url-desktop",
            "l2-live-desktop",
            "l3-stopped-desktop",
        ],
    );

    // What nginx recorded of the stream is whole and playable: seconds of the room's video.
    let info = probe(&flv);
    let duration = number(&info["format"]["duration"]);
    assert!(duration >= 4.0, "{duration:.2} s reached nginx: {info}");
    assert_eq!(stream(&info, "video")["codec_name"], "h264", "{info}");
    assert_eq!(stream(&info, "audio")["codec_name"], "aac", "{info}");
    assert!(
        number(&stream(&info, "video")["nb_read_frames"]) >= duration * 20.0,
        "{info}"
    );
    // Its video plays along: frames spread over the stream, not all at its start.
    let times = video_packet_times(&flv);
    let last = times.iter().copied().fold(0.0, f64::max);
    assert!(
        last >= duration - 2.0,
        "the video's last frame is at {last:.2} s of {duration:.2} s"
    );
    // The key is not written into the edge's or the recorder's logs.
    recorder.wait_log(0, "", Duration::from_secs(1));
    assert!(
        !recorder.log.join("\n").contains(&stream_key),
        "the recorder logged the stream key"
    );
    assert!(
        !system.stderr().contains(&stream_key),
        "the edge logged the stream key"
    );
}
