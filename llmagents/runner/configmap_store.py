"""The checkpoint in the ConfigMap ``<agent>-checkpoint``, compare-and-swapped on resourceVersion.

The runner creates its ConfigMaps (this one and the results shards) when it first needs
them, owned by its LLMAgent so that deleting the agent deletes them, and by server-side
apply: an apply that creates an object is authorised as ``create`` *of that name*, so the
runner's Role grants ``create`` for its own ConfigMaps only (a plain POST carries no name
and is refused). The operator used to create them empty; leaving them to the runner took
five of its twelve writes per agent out of the burst a thousand new agents cause.

A checkpoint is stored as ``data["checkpoint.json"]`` (readable with
``kubectl get cm <agent>-checkpoint -o jsonpath='{.data.checkpoint\\.json}'``) or, when
compressed, as ``binaryData["checkpoint.json.gz"]``; the writing runner's epoch is the
annotation ``llmagents.dev/checkpoint-epoch``. Each write is a JSON merge patch that names
the resourceVersion it expects, so the API server refuses it (409) if anyone wrote since:
that refusal is what ``Checkpointer`` turns into fencing.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from llmagents.api.runner_config import AgentIdentity
from llmagents.api.status import API_VERSION, RUNNER_FIELD_MANAGER
from llmagents.kube import (
    KubeClient,
    KubeConflict,
    KubeError,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    config_map_path,
)
from llmagents.runner.checkpoint import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    CheckpointTooLarge,
    Encoded,
    StoreUnavailable,
    VersionConflict,
    b64decode,
    decode,
    parse_epoch,
)
from llmagents.runner.checkpoint_store import Stored

logger = logging.getLogger(__name__)

ANNOTATION_EPOCH = "llmagents.dev/checkpoint-epoch"
KEY_PLAIN = "checkpoint.json"
KEY_GZIP = "checkpoint.json.gz"
MANAGED_BY = "llmagents-runner"


def owned_config_map(owner: AgentIdentity, name: str) -> dict[str, Any]:
    """An empty ConfigMap of the runner's, owned by its LLMAgent."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {
                "app.kubernetes.io/name": "llmagents-runner",
                "app.kubernetes.io/instance": owner.name,
                "app.kubernetes.io/part-of": "llmagents",
                "app.kubernetes.io/managed-by": MANAGED_BY,
                "llmagents.dev/agent": owner.name,
            },
            # No blockOwnerDeletion: setting it needs rights on the agent's finalizers.
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "LLMAgent", "name": owner.name,
                 "uid": owner.uid, "controller": True}
            ],
        },
    }  # fmt: skip


async def ensure_config_map(kube: KubeClient, owner: AgentIdentity, name: str) -> dict[str, Any]:
    """Create the ConfigMap ``name`` if it is missing; returns it as the API server has it.

    The apply names only metadata, so re-applying it never touches data another write put
    there, whoever created the object first.
    """
    return await kube.apply(
        config_map_path(owner.namespace, name),
        owned_config_map(owner, name),
        field_manager=RUNNER_FIELD_MANAGER,
    )


class ConfigMapCheckpointStore:
    """``CheckpointStore`` over one ConfigMap, created on first use (see the module docstring)."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        owner: AgentIdentity,
        name: str,
        limit: int = MAX_CHECKPOINT_BYTES,
    ) -> None:
        self.kube = kube
        self.owner = owner
        self.namespace = owner.namespace
        self.name = name
        self.limit = limit
        self._path = config_map_path(owner.namespace, name)

    async def read(self) -> Stored:
        try:
            try:
                config_map = await self.kube.get(self._path)
            except KubeNotFound:
                config_map = await ensure_config_map(self.kube, self.owner, self.name)
                logger.info(
                    "agent %s: created ConfigMap %s for checkpoints", self.owner.name, self.name
                )
        except KubeError as error:
            raise StoreUnavailable(str(error)) from None
        meta = config_map["metadata"]
        where = f"ConfigMap {self.name}"
        epoch = parse_epoch((meta.get("annotations") or {}).get(ANNOTATION_EPOCH), where=where)
        data = config_map.get("data") or {}
        binary = config_map.get("binaryData") or {}
        checkpoint = None
        if KEY_GZIP in binary:
            checkpoint = decode(b64decode(binary[KEY_GZIP], where=where), compressed=True)
        elif KEY_PLAIN in data:
            checkpoint = decode(str(data[KEY_PLAIN]).encode(), compressed=False)
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
        except KubeNotFound:
            # Deleted under us: recreate it empty; the checkpointer reads it again (epoch 0,
            # so not fenced) and writes its state into it.
            try:
                await ensure_config_map(self.kube, self.owner, self.name)
            except KubeError as error:
                raise StoreUnavailable(str(error)) from None
            logger.warning(
                "agent %s: ConfigMap %s was deleted; created it again", self.owner.name, self.name
            )
            raise VersionConflict(f"ConfigMap {self.name} was deleted and created again") from None
        except KubeUnavailable as error:
            raise StoreUnavailable(str(error)) from None
        except KubeError as error:
            raise CheckpointError(str(error)) from None
        return str(config_map["metadata"]["resourceVersion"])
