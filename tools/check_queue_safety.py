"""Queue the API workflows with bad widget values in a real ComfyUI and report what happens.

Run with ComfyUI's own Python (it has aiohttp) against a server with this pack loaded and
``--input-directory workflows/input``:

    $VENV/bin/python tools/check_queue_safety.py --url http://127.0.0.1:8188 workflows/api

One JSON line per check:
1. the one-node RollingDepth (template 00): the progress events it sends, which must be one bar
   (one maximum) that never goes back;
2. template 02 with Save Depth's prefix ``../x``: ComfyUI queues the valid outputs (HTTP 200
   with ``node_errors``); the run must stop with our error before any work (seconds, nodes
   executed, the error);
3. widget values refused when queued: dilations, a processing resolution over the limit, a
   co-alignment subsample of 0, an absolute Save Depth prefix, percentiles in the wrong order
   (HTTP status and ComfyUI's per-input details).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

BAD_WIDGETS = [
    ("01_video_depth_fast_stages", "RollingDepthSampleSnippets", {"dilations": "10,25"}),
    ("01_video_depth_fast_stages", "RollingDepthDenoiseSnippets", {"processing_resolution": 8192}),
    ("01_video_depth_fast_stages", "RollingDepthCoalign", {"subsample": 0}),
    ("02_full_quality_refine_exr", "RollingDepthSaveDepth", {"filename_prefix": "/abs/x"}),
    ("01_video_depth_fast_stages", "RollingDepthDepthToImage",
     {"low_percentile": 99.0, "high_percentile": 50.0}),
]


def post(url: str, prompt: dict, client_id: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + "/prompt", data=json.dumps({"prompt": prompt, "client_id": client_id}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def run(url: str, prompt: dict, timeout: float) -> tuple[int, dict, list, float]:
    """Queue ``prompt`` and collect its websocket events until it ends."""
    import aiohttp

    client_id = uuid.uuid4().hex
    socket = url.replace("http", "ws", 1) + f"/ws?clientId={client_id}"
    async with aiohttp.ClientSession() as session, session.ws_connect(socket) as ws:
        status, answer = post(url, prompt, client_id)
        if status != 200:
            return status, answer, [], 0.0
        events, tic = [], time.time()
        while time.time() - tic < timeout:
            message = await ws.receive(timeout=timeout)
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data.get("data", {}).get("prompt_id") not in (answer["prompt_id"], None):
                continue
            events.append((data["type"], data.get("data") or {}))
            if data["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                break
        return status, answer, events, time.time() - tic


def node_of(prompt: dict, class_type: str) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] == class_type)


async def checks(url: str, api: Path, timeout: float) -> None:
    def say(record: dict) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    prompt = json.loads((api / "00_one_node_fast.json").read_text())
    one = node_of(prompt, "RollingDepth")
    status, _, events, seconds = await run(url, prompt, timeout)
    bar = [(e["value"], e["max"]) for kind, e in events if kind == "progress" and e.get("node") == one]
    done = [value for value, _ in bar]
    say({"check": "one-node progress", "result": events[-1][0] if events else status,
         "seconds": round(seconds, 1), "progress_events": len(bar), "maxima": sorted({m for _, m in bar}),
         "never_goes_back": done == sorted(done), "last": bar[-1:] if bar else None})

    prompt = json.loads((api / "02_full_quality_refine_exr.json").read_text())
    prompt[node_of(prompt, "RollingDepthSaveDepth")]["inputs"]["filename_prefix"] = "../x"
    status, answer, events, seconds = await run(url, prompt, timeout)
    error = next((e for kind, e in events if kind == "execution_error"), {})
    executed = [prompt[e["node"]]["class_type"] for kind, e in events
                if kind == "executing" and e.get("node")]
    say({"check": "Save Depth prefix ../x in template 02", "http": status,
         "node_errors": sorted(answer.get("node_errors", {})), "result": events[-1][0] if events else None,
         "seconds": round(seconds, 1),
         "executed": executed,
         "error_node": error.get("node_type"), "message": (error.get("exception_message") or "").strip()})

    for name, class_type, changes in BAD_WIDGETS:
        prompt = json.loads((api / f"{name}.json").read_text())
        prompt[node_of(prompt, class_type)]["inputs"].update(changes)
        status, answer = post(url, prompt, "check")
        errors = [e for node in answer.get("node_errors", {}).values() for e in node["errors"]]
        say({"check": f"{class_type} {changes}", "http": status,
             "errors": [f"{e['message']}: {e['details']}" for e in errors][:2]})
        if status == 200:  # ComfyUI queued the other outputs: do not let them run
            urllib.request.urlopen(urllib.request.Request(url + "/interrupt", data=b"", method="POST"))
            urllib.request.urlopen(urllib.request.Request(
                url + "/queue", data=json.dumps({"clear": True}).encode(), method="POST",
                headers={"Content-Type": "application/json"}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("api", type=Path, help="the API workflows (workflows/api)")
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    asyncio.run(checks(args.url.rstrip("/"), args.api, args.timeout))


if __name__ == "__main__":
    main()
