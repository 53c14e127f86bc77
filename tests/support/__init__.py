"""What the tests share and that is no test: tiny models and data (`helpers`),
TF Hub SavedModels written on the fly (`savedmodels`), and the subprocess
worker of the multi-CPU and multi-worker runs (`distribute_worker`).
"""
