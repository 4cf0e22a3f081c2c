"""Runs ONE EZKL call in a process of its own, for scripts/ezkl/bench.py.

    step.py SPEC.json

SPEC = {"call": <ezkl function name, "accuracy" or "noop">, "kwargs": {...}, "result": <path>}; a dict
"py_run_args" becomes an ezkl.PyRunArgs with those attributes set.
Writes {"ok": true, "seconds": <wall-clock seconds of the call alone>, "value": ...} (or
{"ok": false, "error": ...}) to SPEC["result"]. The parent reads this process's peak resident memory
from os.wait4, so each EZKL step is measured on its own (the interpreter and `import ezkl` included).

"accuracy" is not an EZKL call: it runs ezkl.gen_witness on every sample of a labelled set
({"inputs": [[...]], "labels": [...]}) and reports the quantized outputs' argmax accuracy.
"""

import asyncio
import inspect
import json
import os
import sys
import tempfile
import time
import traceback


def call_ezkl(ezkl, name, kwargs):
    """Some EZKL 23 functions return awaitables that need a running event loop: run them in one."""
    fn = getattr(ezkl, name)
    if isinstance(kwargs.get("py_run_args"), dict):
        run_args = ezkl.PyRunArgs()
        for key, value in kwargs["py_run_args"].items():
            setattr(run_args, key, value)
        kwargs = {**kwargs, "py_run_args": run_args}

    async def run():
        value = fn(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        return value

    return asyncio.run(run())


def output_floats(ezkl, witness, scale):
    return [ezkl.felt_to_float(felt, scale) for felt in witness["outputs"][0]]


def accuracy(ezkl, eval_set, compiled, settings, limit):
    data = json.load(open(eval_set))
    scale = json.load(open(settings))["model_output_scales"][0]
    inputs, labels = data["inputs"][:limit], data["labels"][:limit]
    correct = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "input.json")
        for x, label in zip(inputs, labels):
            with open(path, "w") as f:
                json.dump({"input_data": [x]}, f)
            witness = ezkl.gen_witness(data=path, model=compiled, output=os.path.join(tmp, "w.json"))
            logits = output_floats(ezkl, witness, scale)
            correct += int(max(range(len(logits)), key=logits.__getitem__) == label)
    return {"samples": len(inputs), "correct": correct, "accuracy": correct / max(1, len(inputs))}


def main():
    spec = json.load(open(sys.argv[1]))
    result = {"ok": False}
    try:
        import ezkl

        started = time.perf_counter()
        if spec["call"] == "noop":  # the interpreter + `import ezkl` alone, as a memory baseline
            value = None
        elif spec["call"] == "accuracy":
            value = accuracy(ezkl, **spec["kwargs"])
        else:
            value = call_ezkl(ezkl, spec["call"], spec["kwargs"])
        seconds = time.perf_counter() - started
        if not isinstance(value, (bool, int, float, str, dict, list, type(None))):
            value = repr(value)
        if spec["call"] in ("gen_witness", "prove"):
            value = None  # large; the same content is in the file the call wrote
        result = {"ok": True, "seconds": seconds, "value": value}
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which decides
        result = {"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    with open(spec["result"], "w") as f:
        json.dump(result, f)
    sys.stdout.flush()
    sys.stderr.flush()
    # EZKL's native runtime can crash while the interpreter finalizes (seen: SIGSEGV after
    # create_evm_verifier); the result is written, so leave without finalizing.
    os._exit(0)


if __name__ == "__main__":
    main()
