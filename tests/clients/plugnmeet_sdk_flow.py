"""Drives the edge with plugNmeet's official Python SDK (plugnmeet-sdk from PyPI), unchanged:
create a room, get a join token, check it is active, read its info, end it; then list its
analytics file, download it with a download token, find it through plugNmeet's newer artifact
API (which this SDK has no methods for: its own signed transport calls the routes) and delete
it; and ask for the client files a CMS plugin loads into its page.

usage: plugnmeet_sdk_flow.py BASE_URL API_KEY API_SECRET ROOM_ID
Exits non-zero with the failing step on stderr; prints "sdk flow ok" on success.
"""
import asyncio
import base64
import json
import sys
import urllib.request

from plugnmeet_sdk import PlugNMeet
from plugnmeet_sdk.schemas.data import (
    BreakoutRoomFeatures, ChatFeatures, DisplayExternalLinkFeatures, ExternalMediaPlayerFeatures,
    RecordingFeatures, RoomFeatures, RoomMetadata, SharedNotePadFeatures, UserInfo, UserMetadata,
    WaitingRoomFeatures, WhiteboardFeatures,
)
from plugnmeet_sdk.schemas.requests import (
    CreateRoomRequest, DeleteAnalyticsRequest, EndRoomRequest, FetchAnalyticsRequest,
    GetActiveRoomInfoRequest, GetAnalyticsDownloadTokenRequest, GetClientFilesRequest,
    JoinRoomRequest, RoomStatusRequest,
)


def check(step, condition, detail):
    if not condition:
        print(f"FAILED at {step}: {detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {step}")


async def main(base_url, api_key, api_secret, room_id):
    pnm = PlugNMeet(base_url, api_key, api_secret)
    features = RoomFeatures(
        allow_webcams=True, mute_on_start=False, allow_screen_share=True, allow_rtmp=False,
        admin_only_webcams=False, allow_view_other_webcams=True, allow_view_other_users_list=True,
        recording_features=RecordingFeatures(is_allow=True, is_allow_cloud=True, is_allow_local=False,
                                             enable_auto_cloud_recording=False),
        chat_features=ChatFeatures(allow_chat=True, allow_file_upload=False),
        shared_note_pad_features=SharedNotePadFeatures(allowed_shared_note_pad=True),
        whiteboard_features=WhiteboardFeatures(allowed_whiteboard=True),
        external_media_player_features=ExternalMediaPlayerFeatures(allowed_external_media_player=True),
        waiting_room_features=WaitingRoomFeatures(is_active=False),
        breakout_room_features=BreakoutRoomFeatures(is_allow=True, allowed_number_rooms=4),
        display_external_link_features=DisplayExternalLinkFeatures(is_allow=True),
        room_duration=30,
    )
    status, res = await pnm.createRoom(CreateRoomRequest(
        room_id=room_id, max_participants=10,
        metadata=RoomMetadata(room_title="SDK room", room_features=features, welcome_message="Welcome")))
    check("createRoom", status == 200 and res["status"] is True, res)
    sid = res["room_info"]["sid"]
    metadata = json.loads(res["room_info"]["metadata"])
    check("createRoom keeps explicit false", metadata["room_features"]["allow_rtmp"] is False, metadata)

    status, res = await pnm.getJoinToken(JoinRoomRequest(room_id=room_id, user_info=UserInfo(
        name="SDK User", user_id="sdk-user", is_admin=True,
        user_metadata=UserMetadata(preferred_lang="en"))))
    check("getJoinToken", status == 200 and res["status"] is True and res["token"], res)
    payload = res["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    check("join token claims", claims["sub"] == "sdk-user" and claims["room_id"] == room_id, claims)

    status, res = await pnm.isRoomActive(RoomStatusRequest(room_id=room_id))
    check("isRoomActive", status == 200 and res["is_active"] is True, res)

    status, res = await pnm.getActiveRoomInfo(GetActiveRoomInfoRequest(room_id=room_id))
    check("getActiveRoomInfo", status == 200 and res["room"]["room_info"]["sid"] == sid, res)

    status, res = await pnm.getActiveRoomsInfo()
    check("getActiveRoomsInfo", status == 200 and any(
        r["room_info"]["room_id"] == room_id for r in res["rooms"]), res)

    status, res = await pnm.endRoom(EndRoomRequest(room_id=room_id))
    check("endRoom", status == 200 and res["status"] is True, res)

    status, res = await pnm.isRoomActive(RoomStatusRequest(room_id=room_id))
    check("isRoomActive after end", res["is_active"] is False and res["status_code"] == "ROOM_NOT_ACTIVE", res)

    status, res = await pnm.fetchAnalytics(FetchAnalyticsRequest(room_ids=[room_id]))
    check("fetchAnalytics", status == 200 and res["status"] is True
          and len(res["result"]["analytics_list"]) == 1, res)
    info = res["result"]["analytics_list"][0]
    check("the session's analytics", info["room_id"] == room_id and sid in info["file_id"]
          and info["file_name"].endswith(".json") and info["file_size"] > 0, info)
    status, res = await pnm.getAnalyticsDownloadToken(
        GetAnalyticsDownloadTokenRequest(file_id=info["file_id"]))
    check("getAnalyticsDownloadToken", status == 200 and res["status"] is True and res["token"], res)
    with urllib.request.urlopen(f"{base_url}/download/analytics/{res['token']}") as answer:
        body = answer.read()
    analytics = json.loads(body)
    check("analytics file", len(body) == info["file_size"]
          and analytics["room"]["room_id"] == room_id
          and analytics["room"]["room_title"] == "SDK room" and analytics["users"] == [], analytics)
    # The same file as plugNmeet's artifact API shows it, signed by the SDK's own transport.
    status, res = await pnm._async_request(
        "/artifact/fetch", {"room_ids": [room_id], "type": "MEETING_ANALYTICS"})
    artifacts = (res.get("result") or {}).get("artifacts_list") or [{}]
    check("artifact/fetch", status == 200 and res["status"] is True
          and artifacts[0].get("artifact_id") == info["file_id"]
          and artifacts[0].get("type") == "MEETING_ANALYTICS", res)
    status, res = await pnm._async_request("/artifact/info", {"artifact_id": info["file_id"]})
    check("artifact/info", status == 200 and res["status"] is True
          and res["room_info"]["room_sid"] == sid, res)
    status, res = await pnm._async_request(
        "/artifact/getDownloadToken", {"artifact_id": info["file_id"]})
    check("artifact/getDownloadToken", status == 200 and res["status"] is True, res)
    with urllib.request.urlopen(f"{base_url}/download/artifact/{res['token']}") as answer:
        check("artifact download", answer.read() == body, "another body")
    status, res = await pnm.deleteAnalytics(DeleteAnalyticsRequest(file_id=info["file_id"]))
    check("deleteAnalytics", status == 200 and res["status"] is True, res)
    status, res = await pnm.fetchAnalytics(FetchAnalyticsRequest(room_ids=[room_id]))
    check("fetchAnalytics after delete", res["status"] is False and res["status_code"] == "NOT_FOUND", res)

    # What plugNmeet's CMS plugins load into their page; each file is there, for any origin.
    status, res = await pnm.getClientFiles(GetClientFilesRequest())
    check("getClientFiles", status == 200 and res["status"] is True
          and any(f.startswith("main-module.") for f in res.get("js_files") or [])
          and len(res.get("css_files") or []) > 0, res)
    for kind in ("js", "css"):
        for name in res[f"{kind}_files"]:
            with urllib.request.urlopen(f"{base_url}/assets/{kind}/{name}") as answer:
                check(f"client file {kind}/{name}", answer.status == 200
                      and answer.headers.get("Access-Control-Allow-Origin") == "*",
                      dict(answer.headers))

    bad = PlugNMeet(base_url, api_key, "wrong-secret")
    status, res = await bad.isRoomActive(RoomStatusRequest(room_id=room_id))
    check("wrong secret is refused", status == 401 and res["status"] is False, res)
    print("sdk flow ok")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
