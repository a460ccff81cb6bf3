"""The lab: measures of speed and quality, the baselines ours is compared with, and harnesses.

Speed and memory (`bench`, `bench_suite`, the app's latencies in `app_bench` over
`app_process`, rosinality's StyleGAN2 beside ours in `reference_stylegan2`), quality against
the paper's baselines (`evaluate`, `baselines`) and projection (`project_eval`). Nothing here
imports app.py or gradio: the app is measured running in a child process.
"""
