"""Baseline servers the benches run beside medai in the same script."""
