"""The ``locus`` command: one thin module per subcommand, each with ``add_parser`` and ``run``."""
