"""ProviderPool rules the models enforce as the CRD does: where an API key may be sent."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmagents.api.pool import ProviderPoolSpec


def _pool(**provider: object) -> dict:
    base = {"name": "gpt", "type": "openai", "model": "m", "secretRef": {"name": "keys"}}
    return {"providers": [{**base, **provider}]}


@pytest.mark.parametrize(
    "url",
    ["http://vllm.internal:8000/v1", "http://10.0.0.7/v1", "http://api.openai.com/v1",
     "http://[2001:db8::1]:8000", "http://127.0.0.1.example.test/v1"],
)  # fmt: skip
def test_a_plain_http_base_url_off_loopback_is_refused_for_a_provider_with_a_key(url):
    with pytest.raises(ValidationError, match="allowInsecureBaseURL") as refused:
        ProviderPoolSpec.model_validate(_pool(baseURL=url))
    assert "'gpt'" in str(refused.value)


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1", "https://10.0.0.7/v1", "http://127.0.0.1:18082/v1",
     "http://127.100.0.7:8080", "http://localhost:8000/v1", "http://[::1]:8000"],
)  # fmt: skip
def test_https_and_loopback_base_urls_need_no_opt_in(url):
    assert ProviderPoolSpec.model_validate(_pool(baseURL=url)).providers[0].base_url == url


def test_the_opt_in_allows_plain_http_for_that_provider_only():
    spec = ProviderPoolSpec.model_validate(
        {"providers": [
            {**_pool()["providers"][0], "baseURL": "http://vllm.internal:8000/v1",
             "allowInsecureBaseURL": True},
            {"name": "other", "type": "anthropic", "model": "m", "secretRef": {"name": "keys"}},
        ]}
    )  # fmt: skip
    assert spec.providers[0].allow_insecure_base_url is True
    assert spec.providers[1].allow_insecure_base_url is False
    assert spec.to_wire()["providers"][0]["allowInsecureBaseURL"] is True


def test_an_onnx_provider_sends_no_key_and_may_use_plain_http():
    pool = {"providers": [{"name": "local", "type": "onnx", "model": "m",
                           "baseURL": "http://onnx.models.svc:8090/v1"}]}  # fmt: skip
    assert ProviderPoolSpec.model_validate(pool).providers[0].base_url
