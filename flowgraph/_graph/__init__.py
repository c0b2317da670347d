"""What a user declares: nodes, edges, tools, hooks, the flow's spec, validation and
the plan compiled from it. Plain data and pure functions: never imports the engine."""
