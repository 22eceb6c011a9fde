"""A gateway-mode agent: asks the runner's gateway a few questions with the OpenAI SDK.

It knows no provider: OPENAI_BASE_URL and OPENAI_API_KEY come from the operator. Each
answer is printed with the provider that gave it (the x-llmagents-provider header), the
count of answers so far is stored in the agent's checkpoint state (so a restarted agent
carries on where it was), and then it idles, as an always-on agent would.
"""

import json
import os
import time
import urllib.request

from openai import OpenAI

QUESTIONS = int(os.environ.get("QUESTIONS", "3"))
gateway = os.environ["OPENAI_BASE_URL"].rstrip("/")


def state() -> dict:
    with urllib.request.urlopen(f"{gateway}/checkpoint/state", timeout=10) as resp:
        return json.loads(resp.read()).get("state") or {}


def save(value: dict) -> None:
    body = json.dumps({"state": value}).encode()
    req = urllib.request.Request(
        f"{gateway}/checkpoint/state",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=30).close()


client = OpenAI(max_retries=0, timeout=120)
done = state().get("answered", 0)
print(f"agent: starting with {done} answered", flush=True)
while done < QUESTIONS:
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": f"Question {done + 1}: name a colour."}],
        max_tokens=16,
    )
    answer = raw.parse()
    done += 1
    print(
        f"agent: answer {done} from {raw.headers.get('x-llmagents-provider')}: "
        f"{answer.choices[0].message.content!r}",
        flush=True,
    )
    save({"answered": done})
print(f"agent: all {QUESTIONS} answered", flush=True)
while True:
    time.sleep(3600)
