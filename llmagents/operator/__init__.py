"""The operator: turns LLMAgents (with their ProviderPools) into running runner pods.

Pure parts (``builders``, ``rbac``, ``phase``, ``pool_status``) compute what should exist;
``reconcile`` writes only the difference; ``handlers`` wires it to kopf; ``main`` runs it.
"""
