"""``python -m tenantatlas_pipelines.simulator``: see ``server.main``."""

from tenantatlas_pipelines.simulator.server import main

main()
