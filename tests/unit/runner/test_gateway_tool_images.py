"""Images in a tool's result (a screenshot from a computer-use or browser tool): a provider
that can read them gets them, one that cannot refuses the call so that another takes it;
never an answer written as if the tool had returned nothing."""

from __future__ import annotations

import httpx

from .conftest import Pod

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
SCREENSHOT = [
    {"type": "text", "text": "the screen"},
    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
]


def request(model: str) -> dict[str, object]:
    return {
        "model": model, "max_tokens": 50,
        "tools": [{"name": "screenshot", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "What is on the screen?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                               "name": "screenshot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                          "content": SCREENSHOT}]},
        ],
    }  # fmt: skip


async def test_an_anthropic_provider_gets_the_image_of_a_tool_result(pod: Pod) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(pod.url + "/messages", json=request("claude"))
    assert answer.status_code == 200, answer.text
    text = answer.json()["content"][0]["text"]
    assert "tool results: the screen" in text and "(saw 1 image/png image)" in text


async def test_gemini_refuses_images_in_a_tool_result_rather_than_drop_them(pod: Pod) -> None:
    """Gemini's function responses hold JSON only: the adapter refuses the call (another
    provider may take it; Gemini alone, a 400 that says why), Gemini is neither called nor
    blamed."""
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(pod.url + "/messages", json=request("gemini"))
    assert answer.status_code == 400, answer.text
    assert "image" in answer.json()["error"]["message"]
    assert pod.gemini.stats.requests == 0
    assert pod.runner.engine.manager.status()["gemini"].misconfigured is None
