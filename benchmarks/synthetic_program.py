# The program bench_async.py evolves: two sites, nothing to train (see synthetic.toml).
width = 3
rate = 0.5
