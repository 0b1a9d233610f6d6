"""Show which nodes ComfyUI re-runs when one widget changes (standard library only).

Queues an API workflow on a running server, then the same workflow with one widget of one
node class changed, and prints which nodes executed and which came from ComfyUI's cache:

    python tools/check_caching.py --url http://127.0.0.1:8188 \
        workflows/api/01_video_depth_fast_stages.json RollingDepthCoalign num_iterations 500
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request


def call(url: str, data: dict | None = None) -> dict:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def run(url: str, prompt: dict, timeout: float) -> dict:
    prompt_id = call(f"{url}/prompt", {"prompt": prompt, "client_id": "check_caching"})["prompt_id"]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        entry = call(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry["status"].get("completed") or entry and entry["status"]["status_str"] == "error":
            return entry
        time.sleep(0.5)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")


def report(label: str, prompt: dict, entry: dict, seconds: float) -> None:
    cached: list[str] = []
    for name, data in entry["status"]["messages"]:
        if name == "execution_cached":
            cached = data["nodes"]
    executed = [node for node in prompt if node not in cached]
    def names(ids: list[str]) -> str:
        return ", ".join(f"{prompt[i]['class_type']}#{i}" for i in sorted(ids, key=int)) or "-"
    sys.stdout.write(f"{label}: {entry['status']['status_str']} in {seconds:.1f} s\n"
                     f"  executed: {names(executed)}\n  cached:   {names(cached)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("workflow")
    parser.add_argument("node_class")
    parser.add_argument("widget")
    parser.add_argument("value", type=json.loads)
    args = parser.parse_args()
    prompt = json.loads(open(args.workflow).read())
    for label, changed in (("first run", False), ("same graph again", False), ("widget changed", True)):
        if changed:
            for node in prompt.values():
                if node["class_type"] == args.node_class:
                    node["inputs"][args.widget] = args.value
        start = time.monotonic()
        entry = run(args.url, prompt, args.timeout)
        report(label, prompt, entry, time.monotonic() - start)


if __name__ == "__main__":
    main()
