"""A conditional problem for kurobako (external problem protocol, JSON lines on stdin/stdout):
an optimizer choice whose own hyperparameters exist only with it, as Lua constraints. The loss
is least with Adam, lr = 10^-2.5 and 1 - beta1 = 1e-3 (the same function as caviar's
conditional sampler test).

    kurobako problem command -- python3 benches/kurobako_conditional_problem.py > cond.json
"""
import json
import math
import sys

OPTIMIZERS = ["sgd", "momentum", "adam"]


def loss(optimizer, lr, beta1, momentum):
    lr_term = (math.log10(lr) + 2.5) ** 2
    if optimizer == "sgd":
        return lr_term + 1.0
    if optimizer == "momentum":
        return lr_term + 0.5 + (momentum - 0.9) ** 2
    return lr_term + 0.1 * (math.log10(1.0 - beta1) + 3.0) ** 2


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    send({
        "type": "PROBLEM_SPEC_CAST",
        "spec": {
            "name": "conditional-optimizer",
            "attrs": {},
            "params_domain": [
                {"name": "optimizer", "range": {"type": "CATEGORICAL", "choices": OPTIMIZERS},
                 "distribution": "UNIFORM"},
                {"name": "lr", "range": {"type": "CONTINUOUS", "low": 1e-4, "high": 1e-1},
                 "distribution": "LOG_UNIFORM"},
                {"name": "beta1", "range": {"type": "CONTINUOUS", "low": 0.5, "high": 0.9999},
                 "distribution": "UNIFORM", "constraint": {"lua_script": 'optimizer == "adam"'}},
                {"name": "momentum", "range": {"type": "CONTINUOUS", "low": 0.0, "high": 0.99},
                 "distribution": "UNIFORM",
                 "constraint": {"lua_script": 'optimizer == "momentum"'}},
            ],
            "values_domain": [{"name": "loss", "range": {"type": "CONTINUOUS"},
                               "distribution": "UNIFORM"}],
            "steps": 1,
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
            index, lr, beta1, momentum = evaluators[msg["evaluator_id"]]
            optimizer = OPTIMIZERS[int(index)]
            # A parameter whose condition fails arrives as null; one that holds, as a number.
            if (beta1 is None) != (optimizer != "adam") or \
                    (momentum is None) != (optimizer != "momentum"):
                send({"type": "ERROR_REPLY", "kind": "INVALID_INPUT",
                      "message": f"bad conditional params {evaluators[msg['evaluator_id']]}"})
                continue
            send({"type": "EVALUATE_REPLY", "current_step": 1,
                  "values": [loss(optimizer, lr, beta1, momentum)]})
        elif kind == "DROP_EVALUATOR_CAST":
            evaluators.pop(msg["evaluator_id"], None)


if __name__ == "__main__":
    main()
