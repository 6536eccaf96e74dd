#!/usr/bin/env python3
"""A kurobako solver for Optuna with several objectives (kurobako's own Optuna recipe makes
single-objective studies only): every value minimised, one direction per objective.

Usage: kurobako solver --name optuna-nsga2 command -- python3 benches/optuna_mo_solver.py \
           NSGAIISampler [OBJECTIVES]
Needs optuna==4.4.0 and kurobako==0.2.1 (pip).
"""
import sys

import optuna
from kurobako import solver
from kurobako.solver.optuna import OptunaSolverFactory

sampler_name = sys.argv[1]
objectives = int(sys.argv[2]) if len(sys.argv) > 2 else 2
optuna.logging.set_verbosity(optuna.logging.WARNING)


def create_study(seed):
    sampler = getattr(optuna.samplers, sampler_name)(seed=seed % (2**32))
    return optuna.create_study(directions=["minimize"] * objectives, sampler=sampler)


solver.SolverRunner(OptunaSolverFactory(create_study, name=f"optuna-{sampler_name}")).run()
