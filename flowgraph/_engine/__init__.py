"""What happens in a run: the step loop (scheduler), one visit per node kind, the
agent's tool loop, the edge decision and router, the run's state and services, and
the journal that turns the state into commits."""
