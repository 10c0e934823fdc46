"""Transceiver subcommands (``encode``, ``decode``, ``simulate``): thin layers over
``soundspring.pipeline``; each module exposes ``add_arguments(parser)`` and ``run(args)``."""
