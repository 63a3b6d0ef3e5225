"""The runtime: sockets, the event loop, timers and the fault filter around the pure core."""
