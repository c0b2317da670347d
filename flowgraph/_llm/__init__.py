"""Models: the Model protocol and Completion, OpenAIModel, the bundled local model
and its tool-calling shim, and the default model. Knows nothing of flows."""
