"""The Responses API's custom tools (free-text input, as Codex's ``apply_patch``) in the
neutral chat model, where every tool takes JSON arguments.

A custom tool goes to providers as a function of one string argument, ``input``; a grammar
(``lark`` or ``regex``) is appended to its description for the model to follow, since no
other provider enforces one. A call of it comes back to the client as a
``custom_tool_call`` item whose ``input`` is that argument; a call the client sends back
becomes a tool call with ``{"input": ...}`` arguments again, so a conversation moves between
providers with its custom calls intact.
"""

from __future__ import annotations

import json

from llmagents.chat import Tool
from llmagents.wire.responses import CustomFormatGrammar, CustomTool, ResponsesRequest

_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "The tool's input, as text."}},
    "required": ["input"],
    "additionalProperties": False,
}


def as_function(tool: CustomTool) -> Tool:
    """The chat model's function tool standing for ``tool``."""
    description = tool.description or ""
    if isinstance(tool.format, CustomFormatGrammar):
        description += (
            f"\n\nThe `input` argument must follow this {tool.format.syntax} grammar:\n"
            f"{tool.format.definition}"
        )
    return Tool(tool.name, description.strip() or None, _INPUT_SCHEMA)


def custom_names(wire: ResponsesRequest) -> frozenset[str]:
    """Names of the request's custom tools."""
    return frozenset(t.name for t in wire.tools if isinstance(t, CustomTool))


def arguments_of(text: str) -> str:
    """A custom call's input as the JSON arguments of its function."""
    return json.dumps({"input": text})


def input_of(arguments: str) -> str:
    """A custom call's input from its function's JSON arguments (the arguments themselves
    when a provider did not answer with ``{"input": "..."}``)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return arguments
