#!/usr/bin/env python3
"""A real LiveKit participant for system tests.

Uses LiveKit's official Python realtime SDK (`livekit`, Rust FFI core bundled
in the wheel). Tested with livekit==1.2.0 (and livekit-api==1.2.2 for the
driver side) against livekit-server 1.13.5.

    livekit_participant.py --url ws://10.77.0.1:PORT --token JWT \
        [--publish audio,video|audio|video|none] [--seconds N] [--ignore-stdin]
        [--report-media] [--verbose] [--video-codec vp8|h264] [--resize-after S]
        [--mute-video-after S] [--unmute-video-after S]

Joins the room granted by the token (auto_subscribe on), publishes a
synthetic sine-tone audio track and a 320x240 moving-pattern video track
(~15 fps) that keep producing frames while connected. --video-codec picks the
codec LiveKit is asked for (default: the SDK's, VP8); --resize-after S makes the
video 640x480 from S seconds after joining (an encoder reconfiguring mid-stream,
as a browser does when its bandwidth or CPU changes); --mute-video-after S mutes
the video track S seconds after joining and stops its frames, as a browser's
"camera off" does (the track stays published, with no media);
--unmute-video-after S turns it back on S seconds after that and its frames
resume.

stdout (one line per event, flushed):
    joined identity=<id> room=<name> sid=<room sid>   once connected and publishing
    participant_joined identity=<id>                  remote participant present/joined
    participant_left identity=<id>                    remote participant left
    track_subscribed identity=<id> kind=<audio|video> remote track subscribed
    track_unsubscribed identity=<id> kind=<audio|video>
    media_received identity=<id> kind=video WxH       (--report-media) first decoded frame
    media_received identity=<id> kind=audio peak=N    (--report-media) first non-silent frame
    resized WxH                                       (--resize-after) the video grew
    video muted                                       (--mute-video-after) no more frames
    video unmuted                                     (--unmute-video-after) frames again
    data_received from=<id|server> topic=<t> data=<utf-8> a data packet (server: sent by the server API)
    reconnecting / reconnected                        signalling/ICE lost, SDK retrying
    disconnected reason=<REASON>                      server ended the session -> exit 0
    left                                              we left (stdin EOF / --seconds) -> exit 0
    error <message>                                   connect/publish failure -> exit 2

Remote events that happen before `joined` is printed are held back and
printed right after it, so `joined` is always the first line on success.

It leaves when stdin reaches EOF (unless --ignore-stdin), on SIGTERM/SIGINT
(once joined), or when --seconds elapse. NB: a stdin of /dev/null means
"leave right after joining"; keep a pipe open or pass --ignore-stdin. Whatever happens it stops after at most 120 s: a graceful leave is
attempted at ~110 s, and a watchdog thread hard-exits (prints
`error safety limit ...`, code 3) at 120 s.
The token is never printed (it is redacted from error messages).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import sys
import threading
import time

HARD_LIMIT_S = 120.0  # absolute bound on the process lifetime
GRACEFUL_LIMIT_S = 110.0  # start leaving by this point at the latest
CONNECT_TIMEOUT_S = 30.0

START = time.monotonic()


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _hard_exit(code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _start_watchdog() -> None:
    def fire() -> None:
        _emit("error safety limit of %d s reached" % int(HARD_LIMIT_S))
        _hard_exit(3)

    t = threading.Timer(HARD_LIMIT_S, fire)
    t.daemon = True
    t.start()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="ws://HOST:PORT of the LiveKit server")
    p.add_argument("--token", required=True, help="LiveKit access token (JWT)")
    p.add_argument(
        "--publish",
        default="audio,video",
        help="comma list of audio,video, or 'none' (default: audio,video)",
    )
    p.add_argument("--seconds", type=float, default=None, help="leave after N seconds")
    p.add_argument(
        "--ignore-stdin",
        action="store_true",
        help="do not leave on stdin EOF (only --seconds / safety limit)",
    )
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=CONNECT_TIMEOUT_S,
        help="give up joining after this many seconds (default %d)" % int(CONNECT_TIMEOUT_S),
    )
    p.add_argument(
        "--report-media",
        action="store_true",
        help="decode subscribed tracks and print media_received once real frames arrive",
    )
    p.add_argument(
        "--video-codec",
        choices=("vp8", "h264"),
        default=None,
        help="video codec to publish with (default: the SDK's)",
    )
    p.add_argument(
        "--resize-after",
        type=float,
        default=None,
        help="send 640x480 frames from this many seconds after joining",
    )
    p.add_argument(
        "--mute-video-after",
        type=float,
        default=None,
        help="mute the video track and stop its frames this many seconds after joining",
    )
    p.add_argument(
        "--unmute-video-after",
        type=float,
        default=None,
        help="unmute the video track and resume its frames this many seconds after muting it",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="SDK logs (incl. Rust/libwebrtc debug) to stderr",
    )
    a = p.parse_args(argv)
    kinds = set()
    for part in a.publish.split(","):
        part = part.strip().lower()
        if not part or part == "none":
            continue
        if part not in ("audio", "video"):
            p.error("--publish: unknown kind %r" % part)
        kinds.add(part)
    a.kinds = kinds
    return a


class Participant:
    def __init__(self, args: argparse.Namespace) -> None:
        from livekit import rtc

        self.rtc = rtc
        self.args = args
        self.room = rtc.Room()
        self.joined = False
        self.leaving = False
        self.pending: list[str] = []
        self.done = asyncio.Event()
        self.exit_code = 0
        self.tasks: list[asyncio.Task] = []
        self.sources: list[object] = []
        self._wire_events()

    # ---- output -----------------------------------------------------------

    def _secret_free(self, msg: str) -> str:
        msg = " ".join(str(msg).split())
        tok = self.args.token
        if tok:
            msg = msg.replace(tok, "<redacted>")
        return re.sub(r"(access_token=)[^&\s\"']+", r"\1<redacted>", msg)

    def _remote(self, line: str) -> None:
        if self.joined:
            _emit(line)
        else:
            self.pending.append(line)

    def _kind(self, track: object) -> str:
        rtc = self.rtc
        k = getattr(track, "kind", None)
        if k == rtc.TrackKind.KIND_AUDIO:
            return "audio"
        if k == rtc.TrackKind.KIND_VIDEO:
            return "video"
        return "unknown"

    # ---- room events ------------------------------------------------------

    def _wire_events(self) -> None:
        room = self.room

        @room.on("participant_connected")
        def _pc(p) -> None:  # type: ignore[no-untyped-def]
            self._remote("participant_joined identity=%s" % p.identity)

        @room.on("participant_disconnected")
        def _pd(p) -> None:  # type: ignore[no-untyped-def]
            self._remote("participant_left identity=%s" % p.identity)

        @room.on("track_subscribed")
        def _ts(track, pub, p) -> None:  # type: ignore[no-untyped-def]
            kind = self._kind(track)
            self._remote("track_subscribed identity=%s kind=%s" % (p.identity, kind))
            if self.args.report_media and kind in ("audio", "video") and not self.done.is_set():
                self.tasks.append(asyncio.ensure_future(self._consume(track, p.identity, kind)))

        @room.on("track_unsubscribed")
        def _tu(track, pub, p) -> None:  # type: ignore[no-untyped-def]
            self._remote("track_unsubscribed identity=%s kind=%s" % (p.identity, self._kind(track)))

        @room.on("data_received")
        def _data(packet) -> None:  # type: ignore[no-untyped-def]
            sender = packet.participant.identity if packet.participant else "server"
            text = bytes(packet.data).decode("utf-8", "replace").replace("\n", " ")
            self._remote("data_received from=%s topic=%s data=%s" % (sender, packet.topic, text))

        @room.on("reconnecting")
        def _rc() -> None:
            self._remote("reconnecting")

        @room.on("reconnected")
        def _rd() -> None:
            self._remote("reconnected")

        @room.on("disconnected")
        def _dc(reason) -> None:  # type: ignore[no-untyped-def]
            if self.leaving:
                return  # our own disconnect(); we print "left" instead
            try:
                name = self.rtc.DisconnectReason.Name(reason)
            except Exception:
                name = str(reason)
            self.leaving = True
            if not self.joined:
                # flush whatever we saw; the session ended before we got going
                for line in self.pending:
                    _emit(line)
                self.pending.clear()
            _emit("disconnected reason=%s" % name)
            self.exit_code = 0
            self.done.set()

    # ---- media consumer (--report-media) ----------------------------------

    async def _consume(self, track, identity: str, kind: str) -> None:  # type: ignore[no-untyped-def]
        """Print media_received once a decoded frame arrives (audio: non-silent)."""
        import numpy as np

        rtc = self.rtc
        if kind == "video":
            stream = rtc.VideoStream(track, capacity=2)
        else:
            stream = rtc.AudioStream(track, capacity=8)
        try:
            async for ev in stream:
                f = ev.frame
                if kind == "video":
                    ok = f.width > 0 and f.height > 0
                    detail = "%dx%d" % (f.width, f.height)
                else:
                    peak = int(np.abs(np.frombuffer(f.data, dtype=np.int16)).max(initial=0))
                    ok = peak > 0
                    detail = "peak=%d" % peak
                if ok:
                    self._remote("media_received identity=%s kind=%s %s" % (identity, kind, detail))
                    break
        finally:
            try:
                await stream.aclose()
            except Exception:
                pass

    # ---- media producers --------------------------------------------------

    async def _audio_loop(self, source) -> None:  # type: ignore[no-untyped-def]
        import numpy as np

        rate, freq, frame_ms = 48000, 440.0, 20
        spf = rate * frame_ms // 1000
        # one second of 440 Hz loops seamlessly (integer number of periods)
        t = np.arange(rate, dtype=np.float64) / rate
        second = (np.sin(2 * math.pi * freq * t) * 0.3 * 32767).astype(np.int16)
        pos = 0
        next_at = time.monotonic()
        while not self.done.is_set():
            chunk = second[pos : pos + spf]
            pos = (pos + spf) % rate
            frame = self.rtc.AudioFrame(chunk.tobytes(), rate, 1, spf)
            await source.capture_frame(frame)
            next_at += frame_ms / 1000.0
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()  # fell far behind; resync

    async def _video_loop(self, source, w: int, h: int, fps: float) -> None:  # type: ignore[no-untyped-def]
        import numpy as np

        n = 0
        period = 1.0 / fps
        next_at = time.monotonic()
        resize_at = None
        if self.args.resize_after is not None:
            resize_at = time.monotonic() + self.args.resize_after
        mute_at = None
        if self.args.mute_video_after is not None:
            mute_at = time.monotonic() + self.args.mute_video_after
        while not self.done.is_set():
            if mute_at is not None and time.monotonic() >= mute_at:
                mute_at = None
                videos = [
                    publication.track
                    for publication in self.room.local_participant.track_publications.values()
                    if publication.kind == self.rtc.TrackKind.KIND_VIDEO and publication.track
                ]
                for track in videos:
                    track.mute()
                _emit("video muted")
                if self.args.unmute_video_after is None:
                    return
                await asyncio.sleep(self.args.unmute_video_after)
                if self.done.is_set():
                    return
                for track in videos:
                    track.unmute()
                _emit("video unmuted")
                next_at = time.monotonic()
            if resize_at is not None and time.monotonic() >= resize_at:
                w, h, resize_at = 640, 480, None
                _emit("resized %dx%d" % (w, h))
            xs = np.arange(w)
            ys = np.arange(h)
            # diagonal colour bands sliding right + a bouncing white box
            phase = (xs[None, :] + ys[:, None] + n * 4) % 96
            img = np.empty((h, w, 4), dtype=np.uint8)
            img[..., 0] = (phase * 255 // 95).astype(np.uint8)
            img[..., 1] = ((n * 3) % 256)
            img[..., 2] = (255 - img[..., 0])
            img[..., 3] = 255
            bx = (n * 5) % (w - 40)
            by = int((math.sin(n / 10.0) + 1) / 2 * (h - 40))
            img[by : by + 40, bx : bx + 40, :3] = 255
            frame = self.rtc.VideoFrame(w, h, self.rtc.VideoBufferType.RGBA, img.tobytes())
            source.capture_frame(frame, timestamp_us=int((time.monotonic() - START) * 1e6))
            n += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -1.0:
                next_at = time.monotonic()

    async def _publish(self) -> None:
        rtc = self.rtc
        lp = self.room.local_participant
        if "audio" in self.args.kinds:
            src = rtc.AudioSource(48000, 1)
            self.sources.append(src)
            track = rtc.LocalAudioTrack.create_audio_track("synthetic-audio", src)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            self.tasks.append(asyncio.ensure_future(self._audio_loop(src)))
            await lp.publish_track(track, opts)
        if "video" in self.args.kinds:
            w, h = 320, 240
            src = rtc.VideoSource(w, h)
            self.sources.append(src)
            track = rtc.LocalVideoTrack.create_video_track("synthetic-video", src)
            opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
            if self.args.video_codec == "h264":
                opts.video_codec = rtc.VideoCodec.H264
            elif self.args.video_codec == "vp8":
                opts.video_codec = rtc.VideoCodec.VP8
            self.tasks.append(asyncio.ensure_future(self._video_loop(src, w, h, 15.0)))
            await lp.publish_track(track, opts)

    # ---- lifecycle --------------------------------------------------------

    def _watch_stdin(self, loop: asyncio.AbstractEventLoop) -> None:
        def reader() -> None:
            try:
                fd = sys.stdin.fileno()
                while True:
                    if not os.read(fd, 4096):
                        break
            except Exception:
                pass
            loop.call_soon_threadsafe(self._request_leave)

        threading.Thread(target=reader, name="stdin-eof", daemon=True).start()

    def _request_leave(self) -> None:
        if not self.done.is_set():
            self.done.set()

    async def run(self) -> int:
        rtc = self.rtc
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        ct = max(1.0, min(self.args.connect_timeout, GRACEFUL_LIMIT_S - (t0 - START)))
        try:
            await asyncio.wait_for(
                self.room.connect(self.args.url, self.args.token, rtc.RoomOptions(auto_subscribe=True)),
                timeout=ct,
            )
        except asyncio.TimeoutError:
            _emit("error connect timed out after %g s" % ct)
            return 2
        except Exception as e:  # rtc.ConnectError and anything else
            msg = getattr(e, "message", None) or str(e) or type(e).__name__
            _emit("error " + self._secret_free(msg))
            return 2

        try:
            await asyncio.wait_for(self._publish(), timeout=CONNECT_TIMEOUT_S)
        except Exception as e:
            if self.done.is_set():  # server already kicked us out meanwhile
                await self._stop_media()
                return self.exit_code
            msg = "publish failed: " + (str(e) or type(e).__name__)
            _emit("error " + self._secret_free(msg))
            self.leaving = True
            await self._stop_media()
            try:
                await asyncio.wait_for(self.room.disconnect(), timeout=5)
            except Exception:
                pass
            return 2

        if self.done.is_set():  # disconnected by the server while publishing
            await self._stop_media()
            return self.exit_code

        try:
            sid = await asyncio.wait_for(self.room.sid, timeout=10)
        except Exception:
            sid = ""
        lp = self.room.local_participant
        connect_ms = int((time.monotonic() - t0) * 1000)
        # participants that were already in the room do not fire participant_connected
        already = ["participant_joined identity=%s" % p.identity for p in self.room.remote_participants.values()]
        already = [l for l in already if l not in self.pending]
        _emit("joined identity=%s room=%s sid=%s" % (lp.identity, self.room.name, sid))
        print("connect+publish took %d ms" % connect_ms, file=sys.stderr, flush=True)
        self.joined = True
        for line in already + self.pending:
            _emit(line)
        self.pending.clear()

        if not self.args.ignore_stdin:
            self._watch_stdin(loop)
        # From here on SIGTERM/SIGINT mean "leave cleanly" (prints left, exit 0).
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._request_leave)
            except (NotImplementedError, RuntimeError):
                pass
        limit = GRACEFUL_LIMIT_S - (time.monotonic() - START)
        if self.args.seconds is not None:
            limit = min(limit, self.args.seconds)
        try:
            await asyncio.wait_for(self.done.wait(), timeout=max(limit, 0.0))
        except asyncio.TimeoutError:
            pass

        if self.leaving:  # server-side disconnect, already reported
            await self._stop_media()
            return self.exit_code

        self.leaving = True
        self.done.set()
        await self._stop_media()
        try:
            await asyncio.wait_for(self.room.disconnect(), timeout=5)
        except Exception as e:
            print("disconnect: %s" % self._secret_free(str(e)), file=sys.stderr, flush=True)
        _emit("left")
        return 0

    async def _stop_media(self) -> None:
        self.done.set()
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            try:
                await t
            except BaseException:
                pass
        for s in self.sources:
            try:
                await s.aclose()  # type: ignore[attr-defined]
            except Exception:
                pass


async def _amain(args: argparse.Namespace) -> int:
    # Room() and asyncio.Event bind to the running loop: build them inside it.
    return await Participant(args).run()


def main(argv: list[str]) -> None:
    args = _parse_args(argv)
    import logging

    if args.verbose:
        os.environ.setdefault("LIVEKIT_RTC_DEBUG", "1")
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    _start_watchdog()
    try:
        from livekit import rtc  # noqa: F401
    except Exception as e:
        _emit("error cannot import livekit: %s" % e)
        _hard_exit(2)
    try:
        code = asyncio.run(_amain(args))
    except KeyboardInterrupt:
        code = 130
    except Exception as e:
        msg = " ".join(str(e).split()).replace(args.token, "<redacted>") if args.token else str(e)
        _emit("error " + (msg or type(e).__name__))
        code = 2
    # Skip interpreter/FFI teardown: it can block on native threads.
    _hard_exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
