"""The wire formats the project speaks, one module per protocol, as pydantic models.

Each module is shared by everything that reads or writes its protocol: the provider
adapters, the fake providers, the gateway's front doors and the ONNX sidecar.
"""
