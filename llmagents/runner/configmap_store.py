"""The checkpoint in the ConfigMap ``<agent>-checkpoint``, compare-and-swapped on resourceVersion.

The operator creates the ConfigMap empty (so the runner needs no ``create`` right); the
runner owns its data. A checkpoint is stored as ``data["checkpoint.json"]`` (readable with
``kubectl get cm <agent>-checkpoint -o jsonpath='{.data.checkpoint\\.json}'``) or, when
compressed, as ``binaryData["checkpoint.json.gz"]``; the writing runner's epoch is the
annotation ``llmagents.dev/checkpoint-epoch``. Each write is a JSON merge patch that names
the resourceVersion it expects, so the API server refuses it (409) if anyone wrote since:
that refusal is what ``Checkpointer`` turns into fencing.
"""

from __future__ import annotations

import base64
import logging

from llmagents.runner.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    CheckpointTooLarge,
    Encoded,
    Stored,
    StoreUnavailable,
    VersionConflict,
    decode,
)
from llmagents.runner.kube import (
    KubeClient,
    KubeConflict,
    KubeError,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    config_map_path,
)

logger = logging.getLogger(__name__)

ANNOTATION_EPOCH = "llmagents.dev/checkpoint-epoch"
KEY_PLAIN = "checkpoint.json"
KEY_GZIP = "checkpoint.json.gz"


class ConfigMapCheckpointStore:
    """``CheckpointStore`` over one ConfigMap the operator created."""

    def __init__(
        self, kube: KubeClient, *, namespace: str, name: str, limit: int = MAX_CHECKPOINT_BYTES
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.limit = limit
        self._path = config_map_path(namespace, name)

    async def read(self) -> Stored:
        try:
            config_map = await self.kube.get(self._path)
        except KubeNotFound:
            raise StoreUnavailable(
                f"ConfigMap {self.namespace}/{self.name} does not exist yet; the operator "
                "creates it with the agent"
            ) from None
        except KubeError as error:
            raise StoreUnavailable(str(error)) from None
        meta = config_map["metadata"]
        epoch = int((meta.get("annotations") or {}).get(ANNOTATION_EPOCH, 0))
        data = config_map.get("data") or {}
        binary = config_map.get("binaryData") or {}
        checkpoint = None
        if KEY_GZIP in binary:
            checkpoint = decode(base64.b64decode(binary[KEY_GZIP]), compressed=True)
        elif KEY_PLAIN in data:
            checkpoint = decode(data[KEY_PLAIN].encode(), compressed=False)
        return Stored(str(meta["resourceVersion"]), epoch, checkpoint)

    async def write(self, encoded: Encoded, *, epoch: int, expected_version: str) -> str:
        if encoded.size > self.limit:
            raise CheckpointTooLarge(encoded.size, self.limit)
        patch: dict[str, object] = {
            "metadata": {
                "resourceVersion": expected_version,
                "annotations": {ANNOTATION_EPOCH: str(epoch)},
            }
        }
        if encoded.compressed:
            patch["binaryData"] = {KEY_GZIP: base64.b64encode(encoded.payload).decode()}
            patch["data"] = {KEY_PLAIN: None}
        else:
            patch["data"] = {KEY_PLAIN: encoded.payload.decode()}
            patch["binaryData"] = {KEY_GZIP: None}
        try:
            config_map = await self.kube.merge_patch(self._path, patch)
        except KubeConflict:
            raise VersionConflict(
                f"ConfigMap {self.name} changed since resourceVersion {expected_version}"
            ) from None
        except KubeInvalid as error:
            if "too long" in str(error).lower():
                raise CheckpointTooLarge(encoded.size, self.limit) from None
            raise CheckpointError(str(error)) from None
        except (KubeUnavailable, KubeNotFound) as error:
            raise StoreUnavailable(str(error)) from None
        except KubeError as error:
            raise CheckpointError(str(error)) from None
        return str(config_map["metadata"]["resourceVersion"])
