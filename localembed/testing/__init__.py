"""Writers of test models (synthetic.py): tiny random-weight GGUFs for the tests and
benchmarks. The package itself never imports this."""
