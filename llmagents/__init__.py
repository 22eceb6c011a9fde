"""llmagents: keep long-running LLM agents alive and within budget on Kubernetes."""

__version__ = "0.1.0"
