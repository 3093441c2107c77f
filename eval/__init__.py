"""Benchmarks: loaders that turn benchmark files into Tasks, answer checking, pass@k.

Builds on the ``reagent`` core (records, outcome rewards); nothing in the core imports
``eval`` back.
"""
