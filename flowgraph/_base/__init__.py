"""The shared values every layer may use: errors, messages, callables, retry, the
sync bridge, RunContext and Usage, and the result records (RunResult, StepRecord,
ChatResult, Waiting). Imports nothing else of flowgraph."""
