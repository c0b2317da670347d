"""Pictures: DOT, Mermaid, the run drawn over the graph, rendering with dot, the live
view. Reads a declared flow and a result; never imports the engine."""
