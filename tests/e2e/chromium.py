"""Headless Chromium for the guest's browser scenario: a page that reads the SharpCam camera as
Google Meet would (getUserMedia, after enumerateDevices() lists it by label) and draws a frame onto
a canvas, and `in_chromium`, which asks Chromium for that frame over the DevTools protocol on a
pipe (no extra packages: NUL-terminated JSON on the browser's fds 3 and 4).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time

import pattern


class BrowserError(Exception):
    """Chromium did not answer, or answered with an error."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BrowserError(message)


PAGE = """<!doctype html><html><body><script>
async function sharpcamFrame() {
  (await navigator.mediaDevices.getUserMedia({video: true})).getTracks().forEach(t => t.stop());
  const cams = (await navigator.mediaDevices.enumerateDevices()).filter(d => d.kind === "videoinput");
  const cam = cams.find(d => d.label.startsWith("SharpCam"));
  if (!cam) return "NOCAM " + cams.map(d => d.label).join("|");
  const stream = await navigator.mediaDevices.getUserMedia(
    {video: {deviceId: {exact: cam.deviceId}, width: WIDTH, height: HEIGHT}});
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = stream;
  await video.play();
  await new Promise(done => setTimeout(done, 2000));
  const canvas = document.createElement("canvas");
  canvas.width = WIDTH;
  canvas.height = HEIGHT;
  const g = canvas.getContext("2d");
  g.drawImage(video, 0, 0, WIDTH, HEIGHT);
  const rgba = g.getImageData(0, 0, WIDTH, HEIGHT).data;
  let bytes = "";
  for (let i = 0; i < rgba.length; i += 4) bytes += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
  return "LABEL " + cam.label + " PIXELS " + btoa(bytes) + " END";
}
</script></body></html>
""".replace("WIDTH", str(pattern.WIDTH)).replace("HEIGHT", str(pattern.HEIGHT))


def in_chromium(url: str, expression: str, timeout: float, *flags: str) -> str:
    """The value of the awaited JS `expression` on `url` in headless Chromium, asked over the
    DevTools protocol on a pipe (fds 3 and 4 of the browser; NUL-terminated JSON messages)."""
    to_browser, browser_in = os.pipe()
    browser_out, from_browser = os.pipe()

    def fds() -> None:  # in the child: its fds 3 and 4, inheritable (pipes are created close-on-exec)
        high = [os.dup(to_browser), os.dup(from_browser)]
        for fd, target in zip(high, (3, 4)):
            os.dup2(fd, target)

    proc = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--remote-debugging-pipe", "--use-fake-ui-for-media-stream", *flags, "about:blank"],
        preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(to_browser)
    os.close(from_browser)
    deadline = time.monotonic() + timeout
    pending = b""

    def call(message_id: int, method: str, params: dict, session: str | None = None) -> dict:
        nonlocal pending
        message = {"id": message_id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(browser_in, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in pending:
                check(time.monotonic() < deadline, f"Chromium did not answer {method} within {timeout:.0f}s")
                ready, _, _ = select.select([browser_out], [], [], 1.0)
                if ready:
                    chunk = os.read(browser_out, 1 << 20)
                    check(bool(chunk), f"Chromium closed the DevTools pipe (exit {proc.poll()})")
                    pending += chunk
            raw, pending = pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == message_id:
                check("error" not in reply, f"{method}: {reply.get('error')}")
                return reply["result"]

    try:
        target = call(1, "Target.createTarget", {"url": url})["targetId"]
        session = call(2, "Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        call(3, "Runtime.enable", {}, session)
        for attempt in range(100):  # until the page's script has run
            ready = call(10 + attempt, "Runtime.evaluate", {"expression": "typeof sharpcamFrame"}, session)
            if ready["result"].get("value") == "function":
                break
            time.sleep(0.2)
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        result = call(200, "Runtime.evaluate", params, session)
        check("exceptionDetails" not in result, f"the page threw: {result.get('exceptionDetails')}")
        return str(result["result"].get("value"))
    finally:
        os.close(browser_in)
        os.close(browser_out)
        proc.kill()
        proc.wait()
