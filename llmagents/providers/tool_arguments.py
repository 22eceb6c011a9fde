"""Tool-call arguments for the protocols that take them as a JSON object.

The chat model keeps a call's arguments as the JSON text the model wrote (OpenAI's form);
Anthropic's ``tool_use.input`` and Gemini's ``functionCall.args`` must be objects. A call
from the history whose text is not a JSON object (another provider's model may have written
anything) is still sent, wrapped, rather than dropped or refused.
"""

from __future__ import annotations

import json
from typing import Any


def as_object(text: str) -> dict[str, Any]:
    """``text`` as a JSON object: empty is ``{}``, text that is not JSON is kept as
    ``{"arguments": text}`` and a JSON value that is not an object as ``{"value": value}``."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"arguments": text}  # what the model wrote, kept rather than dropped
    return value if isinstance(value, dict) else {"value": value}
