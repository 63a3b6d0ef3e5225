"""zkv-shell: the interactive shell (installed as the ``zkv_shell`` package)."""
