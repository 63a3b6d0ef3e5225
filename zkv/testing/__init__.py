"""The test harness shipped with zkv: local clusters of real node processes, the fault test, its workloads
and the history checker. Not used by a node; tests, tools and the simulator build on it."""
