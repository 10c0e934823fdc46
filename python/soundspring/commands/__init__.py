"""The ``soundspring`` subcommands, one module per command or command group, and the only
place of argument parsing: each module exposes ``add_arguments(parser)`` and ``run(args)``
over the library (``_common``: the options and I/O rules the commands share)."""
