"""The llmagents API: spec and status models of ProviderPool and LLMAgent (group llmagents.dev)."""
