"""The entry layer: the ``posguard`` command line (cli.py), the etl and score jobs (jobs.py), the analysts' API
(api.py) and the benchmarks; it imports app/, etl/ and graph/, and nothing imports it (docs/ARCHITECTURE.md)."""
