"""OpenAI's Responses API (``POST /v1/responses``) as pydantic models: request, answer, events.

The Responses API is what the OpenAI Agents SDK and Codex speak by default. The gateway
serves its stateless form: the client sends the whole conversation as ``input`` items
(messages, ``function_call`` items the model made, ``function_call_output`` items with the
results) and nothing is stored server-side, so ``previous_response_id``, ``conversation``,
``item_reference`` items and ``store: true`` are refused with a message saying why
(``stateful_reason``). An absent ``store`` is served statelessly: the Agents SDK omits it.

Requests are validated strictly, as every front door's are (``llmagents.wire``). Unknown
fields are kept rather than refused, so that a field a newer client sends and the gateway
has no use for (``include``, ``reasoning``, ``prompt_cache_key``, ...) does not break it;
what the gateway cannot honour is refused by the models' types (a ``web_search`` tool, an
``input_file`` part). The answer's models carry the fields OpenAI's SDK and the Agents SDK
read (both are checked against the SDK's own models in the tests). One module per part of
the exchange, as in ``openai_chat``: ``request`` and ``answer`` (with the stream's events);
everything is imported from here.
"""

from __future__ import annotations

from llmagents.wire.responses.answer import (
    IncompleteDetails,
    InputTokensDetails,
    OutputCustomToolCall,
    OutputFunctionCall,
    OutputItem,
    OutputMessage,
    OutputReasoning,
    OutputTokensDetails,
    ResponseError,
    ResponseObject,
    ResponseUsage,
    SummaryText,
    new_id,
    sse_event,
)
from llmagents.wire.responses.request import (
    ENCRYPTED_REASONING,
    ContentPart,
    CustomFormat,
    CustomFormatGrammar,
    CustomFormatText,
    CustomTool,
    CustomToolCallItem,
    CustomToolCallOutputItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionTool,
    InputImage,
    InputItem,
    InputText,
    ItemReference,
    MessageItem,
    OutputRefusal,
    OutputText,
    ReasoningConfig,
    ReasoningItem,
    ResponsesRequest,
    TextConfig,
    TextFormat,
    TextFormatJsonObject,
    TextFormatJsonSchema,
    TextFormatText,
    Tool,
    ToolChoiceFunction,
)

__all__ = [
    "ContentPart",
    "CustomFormat",
    "CustomFormatGrammar",
    "CustomFormatText",
    "CustomTool",
    "CustomToolCallItem",
    "CustomToolCallOutputItem",
    "ENCRYPTED_REASONING",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "IncompleteDetails",
    "InputImage",
    "InputItem",
    "InputText",
    "InputTokensDetails",
    "ItemReference",
    "MessageItem",
    "OutputCustomToolCall",
    "OutputFunctionCall",
    "OutputItem",
    "OutputMessage",
    "OutputReasoning",
    "OutputRefusal",
    "OutputText",
    "OutputTokensDetails",
    "ReasoningConfig",
    "ReasoningItem",
    "ResponseError",
    "ResponseObject",
    "ResponseUsage",
    "ResponsesRequest",
    "SummaryText",
    "TextConfig",
    "TextFormat",
    "TextFormatJsonObject",
    "TextFormatJsonSchema",
    "TextFormatText",
    "Tool",
    "ToolChoiceFunction",
    "new_id",
    "sse_event",
]
