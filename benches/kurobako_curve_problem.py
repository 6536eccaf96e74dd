"""A multi-step problem for kurobako (external problem protocol, JSON lines on stdin/stdout):
a learning curve over 27 steps whose final value depends on three hyperparameters and whose
early values can mislead (a low learning rate starts slow but can end well).

    kurobako problem command -- python3 benches/kurobako_curve_problem.py > curve.json
"""
import json
import math
import sys

STEPS = 27


def curve(lr, momentum, width, step):
    # The final loss: best near lr = 10^-2.3, momentum 0.9, width 0.6.
    d = math.log10(lr) + 2.3
    final = 0.2 * d * d + 4.0 * (momentum - 0.9) ** 2 + 0.5 * (width - 0.6) ** 2
    # How fast it gets there: larger steps converge faster.
    speed = 0.3 * (lr / 1e-2) ** 0.5 * (1.0 + momentum)
    return final + 1.5 * math.exp(-speed * step)


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    send({
        "type": "PROBLEM_SPEC_CAST",
        "spec": {
            "name": "curve27",
            "attrs": {},
            "params_domain": [
                {"name": "lr", "range": {"type": "CONTINUOUS", "low": 1e-4, "high": 1.0},
                 "distribution": "LOG_UNIFORM"},
                {"name": "momentum", "range": {"type": "CONTINUOUS", "low": 0.0, "high": 0.99},
                 "distribution": "UNIFORM"},
                {"name": "width", "range": {"type": "CONTINUOUS", "low": 0.0, "high": 1.0},
                 "distribution": "UNIFORM"},
            ],
            "values_domain": [{"name": "loss", "range": {"type": "CONTINUOUS"},
                               "distribution": "UNIFORM"}],
            "steps": STEPS,
        },
    })
    evaluators = {}
    for line in sys.stdin:
        msg = json.loads(line)
        kind = msg["type"]
        if kind == "CREATE_EVALUATOR_CALL":
            evaluators[msg["evaluator_id"]] = msg["params"]
            send({"type": "CREATE_EVALUATOR_REPLY"})
        elif kind == "EVALUATE_CALL":
            lr, momentum, width = evaluators[msg["evaluator_id"]]
            step = msg["next_step"]
            send({"type": "EVALUATE_REPLY", "current_step": step,
                  "values": [curve(lr, momentum, width, step)]})
        elif kind == "DROP_EVALUATOR_CAST":
            evaluators.pop(msg["evaluator_id"], None)


if __name__ == "__main__":
    main()
