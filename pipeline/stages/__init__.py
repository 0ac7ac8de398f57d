"""Stages: one module per Make target; each orchestrates the libraries and writes results/<RUN>/. Nothing imports a stage."""
