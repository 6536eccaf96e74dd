#!/usr/bin/env python3
"""ZDT1 (Zitzler, Deb and Thiele, 2000): two objectives to minimise over [0, 1]^n.

Usage: zdt1.py X1 X2 ... ; prints `f1=... f2=...`. The Pareto front is f2 = 1 - sqrt(f1),
reached when every variable but the first is 0.
"""
import math
import sys

x = [float(a) for a in sys.argv[1:]]
g = 1.0 + 9.0 * sum(x[1:]) / max(1, len(x) - 1)
f1 = x[0]
f2 = g * (1.0 - math.sqrt(f1 / g))
print(f"f1={f1:.12g} f2={f2:.12g}")
