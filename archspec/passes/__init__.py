"""Static passes over the IR: pure functions of the graph, one walk in execution order each."""
