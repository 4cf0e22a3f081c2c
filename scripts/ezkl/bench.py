"""zkinfer vs EZKL on the same models, the same inputs, the same machine, in one run.

Run it through scripts/bench-vs-ezkl (which prepares scripts/ezkl/.venv); see that script's header.

For every model (the zoo's, the mid-size models of models/bench/gen_models.py generated into
build/bench-models/ when missing, or any ONNX file given by path) it runs
  * zkinfer: `prover-node bench --child` (setup, N proofs, native verify, on-chain gas on its own anvil),
    N timed `prover-node setup` runs, then `prove` and `verify --rpc-url` on this run's anvil for the output
    check;
  * EZKL 23 through its Python API, one call per child process (so each step's peak memory is its own):
    gen_settings -> calibrate_settings("resources") -> compile_circuit -> gen_srs (local, INSECURE) ->
    setup (N runs) -> gen_witness -> prove (N runs) -> verify -> create_evm_verifier -> deploy_evm ->
    verify_evm, with param_visibility "fixed" and, as an extra column, "polycommit";
  * the float model (onnxruntime) for the reference prediction.
It prints one Markdown table, writes it with the run's context to <out>/latest.md, the raw numbers to
<out>/latest.json and a chart to <out>/latest.png, and exits non-zero if any proof fails to verify or any
output disagrees with the float model beyond quantization error. A tool that cannot set a model up (for
example zkinfer refusing a layout whose verifier would not deploy) is reported as such in the table and the
run goes on; the exit status is then 2 (1 for a wrong result).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# The binary scripts/bench-vs-ezkl built: $ZKINFER_PROVER_NODE, else $CARGO_TARGET_DIR/release, else target/release.
PROVER_NODE = Path(os.environ.get("ZKINFER_PROVER_NODE")
                   or (ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "prover-node"))
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLC = ROOT / "scripts" / "solc"
SOLC_ADAPTER = HERE / "solc-adapter"
STEP = HERE / "step.py"
ZOO = ROOT / "models" / "zoo"
BENCH_MODELS = ROOT / "build" / "bench-models"
GEN_MODELS = ROOT / "models" / "bench" / "gen"
# The mid-size models of issue 9 (models/bench/gen_models.py), in the order they are run.
MID = ["mlp_196_128_64_10", "lenet5", "mlp_784_256_128_10", "mlp_784_512_512_10"]
# The zoo models a default run includes (the fast ones; --models can name any model of models/zoo).
ZOO_DEFAULT = ["digits_mlp", "digits_cnn"]
# Targets of issue 9, checked per model in the summary table.
TARGETS = {"prove": 0.25, "prove_zoo": 0.15, "setup": 0.5, "memory": 0.5, "gas": 350_000, "verifier": 24_576}
DEFAULT_OUT = ROOT / "results" / "bench-vs-ezkl"

# EZKL's verifier compile (foundry-compilers) asks svm for this solc version; see solc-adapter.
EZKL_SOLC_VERSION = "0.8.20"
# Same optimizer runs as zkinfer's verifier compile (prover-node bench prints "optimizer 200 runs").
OPTIMIZER_RUNS = 200
# A setup step is repeated --runs times (median reported) only when its first run took less than this.
CHEAP_SETUP_SECONDS = 60.0
STEP_TIMEOUT_SECONDS = 1800.0


class BenchError(Exception):
    """A failure that makes the benchmark's result meaningless (exit 1)."""


def log(msg: str) -> None:
    print(f"[bench-vs-ezkl] {msg}", file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


def argmax(xs):
    return max(range(len(xs)), key=xs.__getitem__)


# ---------------------------------------------------------------------------------------------- anvil


class Anvil:
    """One anvil for the whole run, on a port the OS picks; only this process is ever stopped."""

    def __init__(self, workdir: Path):
        self.log_path = workdir / "anvil.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(ANVIL), "--port", "0", "--hardfork", "prague"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            m = re.search(r"Listening on ([0-9.]+):(\d+)", text)
            if m:
                self.url = f"http://{m.group(1)}:{m.group(2)}"
                break
            if self.proc.poll() is not None:
                raise BenchError(f"anvil exited early (code {self.proc.returncode}): {text[-2000:]}")
            time.sleep(0.1)
        else:
            self.stop()
            raise BenchError(f"anvil did not report its port within 30 s: {text[-2000:]}")
        keys = re.search(r"Private Keys\s*=+\s*(.*?)\n\s*\n", text, re.S)
        self.private_keys = re.findall(r"0x[0-9a-fA-F]{64}", keys.group(1)) if keys else []
        if len(self.private_keys) < 2:
            self.stop()
            raise BenchError("could not read anvil's dev account keys from its banner")

    def rpc(self, method: str, params: list):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------------- float model


def float_reference(onnx: Path, x: list[float]):
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    return sess, inp.name, shape, [float(v) for v in np.asarray(sess.run(None, {inp.name: np.asarray(x, np.float32).reshape(shape)})[0]).ravel()]


def float_accuracy(onnx: Path, eval_set: Path, limit: int):
    import numpy as np

    data = json.loads(eval_set.read_text())
    inputs, labels = data["inputs"][:limit], data["labels"][:limit]
    sess, name, shape, _ = float_reference(onnx, inputs[0])
    correct = 0
    for x, label in zip(inputs, labels):
        out = np.asarray(sess.run(None, {name: np.asarray(x, np.float32).reshape(shape)})[0]).ravel()
        correct += int(int(out.argmax()) == label)
    return correct / max(1, len(inputs)), len(inputs)


def check_outputs(tool: str, logits: list[float], ref: list[float], tol: float) -> dict:
    """Agreement rule: every dequantized logit within `tol` of the float logit, and the same argmax
    unless the float model's top-two margin is itself within 2*tol (a near tie quantization may flip)."""
    if len(logits) != len(ref):
        return {"ok": False, "why": f"{tool}: {len(logits)} outputs, float model has {len(ref)}"}
    err = max(abs(a - b) for a, b in zip(logits, ref))
    top = sorted(ref, reverse=True)
    margin = top[0] - top[1] if len(top) > 1 else math.inf
    same = argmax(logits) == argmax(ref)
    ok = err <= tol and (same or margin <= 2 * tol)
    why = ""
    if not ok:
        why = (f"{tool}: output disagrees with the float model beyond quantization error: max |dlogit| = {err:.4f} "
               f"(tolerance {tol}), argmax {argmax(logits)} vs float {argmax(ref)}; logits {logits} vs float {ref}")
    return {"ok": ok, "max_abs_err": err, "argmax": argmax(logits), "float_argmax": argmax(ref),
            "same_argmax": same, "float_margin": margin, "why": why}


# ------------------------------------------------------------------------------------------ zkinfer


TS = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd, *, env=None, timeout=STEP_TIMEOUT_SECONDS, what=None) -> subprocess.CompletedProcess:
    started = time.perf_counter()
    try:
        p = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{what or cmd[1]} timed out after {timeout:.0f} s: {' '.join(map(str, cmd))}") from e
    p.seconds = time.perf_counter() - started
    if p.returncode != 0:
        raise BenchError(f"{what or cmd[1]} failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n"
                         f"{ANSI.sub('', p.stderr)[-3000:]}\n{p.stdout[-2000:]}")
    return p


def setup_stages(stderr: str) -> dict:
    """Stage durations of `prover-node setup` from its log timestamps (None when a line is missing)."""
    marks = {}
    for line in ANSI.sub("", stderr).splitlines():
        m = TS.search(line)
        if not m:
            continue
        t = dt.datetime.fromisoformat(m.group(1)).timestamp()
        for key, needle in (("sized", "circuit sized"), ("keys", "generating proving and verifying keys"),
                            ("verifier", "Solidity verifier")):
            if needle in line and key not in marks:
                marks[key] = t
    out = {}
    if "sized" in marks and "keys" in marks:
        out["srs_seconds"] = marks["keys"] - marks["sized"]
    if "keys" in marks and "verifier" in marks:
        out["keygen_seconds"] = marks["verifier"] - marks["keys"]
    return out


def zkinfer_side(name: str, onnx: Path, input_file: Path, work: Path, runs: int, setup_runs: int, anvil: Anvil) -> dict:
    d = work / name / "zkinfer"
    d.mkdir(parents=True)
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), "NO_COLOR": "1"}

    log(f"{name}: zkinfer bench --child --runs {runs}")
    p = run([PROVER_NODE, "bench", "--child", "--runs", runs, "--anvil", ANVIL, "--solc", SOLC, onnx],
            env={**env, "RUST_LOG": "warn"}, what="prover-node bench", timeout=STEP_TIMEOUT_SECONDS * (1 + runs))
    row = json.loads([l for l in p.stdout.splitlines() if l.strip().startswith("{")][-1])

    setups = []
    stages = []
    for i in range(setup_runs):
        out = d / "setup"
        shutil.rmtree(out, ignore_errors=True)
        log(f"{name}: zkinfer setup {i + 1}/{setup_runs}")
        p = run([PROVER_NODE, "setup", "--onnx", onnx, "--out-dir", out, "--insecure-dev-srs", "--solc", SOLC],
                env=env, what="prover-node setup")
        setups.append(p.seconds)
        stages.append(setup_stages(p.stderr))
        if i == 0 and p.seconds >= CHEAP_SETUP_SECONDS:
            break
    card_path = out / f"{row['model']}.card.json"
    if not card_path.exists():
        cards = sorted(out.glob("*.card.json"))
        if len(cards) != 1:
            raise BenchError(f"zkinfer setup wrote no single model card in {out}")
        card_path = cards[0]
    card = json.loads(card_path.read_text())
    pk = sorted(out.glob("*.pk"))

    log(f"{name}: zkinfer prove")
    proof_path = d / "proof.json"
    run([PROVER_NODE, "prove", "--card", card_path, "--input", input_file, "--insecure-dev-srs", "--out", proof_path],
        env=env, what="prover-node prove")
    proof = json.loads(proof_path.read_text())

    log(f"{name}: zkinfer verify (native and on-chain)")
    p = run([PROVER_NODE, "verify", "--card", card_path, "--proof", proof_path, "--insecure-dev-srs", "--rpc-url", anvil.url],
            env={**env, "ZKINFER_PRIVATE_KEY": anvil.private_keys[1]}, what="prover-node verify")
    verify_out = ANSI.sub("", p.stdout)
    lines = [l.strip() for l in verify_out.splitlines()]
    native_ok = any(l.startswith("native") and "proof verifies" in l for l in lines)
    onchain_ok = any(l.startswith("on-chain") and "proof verifies" in l for l in lines)

    keygen = [s["keygen_seconds"] for s in stages if "keygen_seconds" in s]
    srs = [s["srs_seconds"] for s in stages if "srs_seconds" in s]
    return {
        "row": row,
        "k": row["k"],
        "advice_columns": row["advice_columns"],
        "quantization": card.get("quantization"),
        "output_scale_bits": card.get("output_scale_bits"),
        "setup_seconds_runs": setups,
        "setup_seconds": median(setups),
        "keygen_seconds": median(keygen),
        "srs_seconds": median(srs),
        "prove_seconds": row["prove_seconds"],
        "verify_seconds": row["verify_seconds"],
        "peak_rss_bytes": row["peak_rss_bytes"],
        "pk_bytes": pk[0].stat().st_size if pk else None,
        "proof_bytes": row["proof_bytes"],
        "calldata_bytes": (len(proof["verifier_calldata"]) - 2) // 2,
        "verifier_bytes": row["verifier_bytes"],
        "verify_tx_gas": row["verify_tx_gas"],
        "outputs": [float(v) for v in proof["output_dequantized"]],
        "prediction": proof["prediction"],
        "native_verified": native_ok,
        "onchain_verified": onchain_ok,
        "verify_output": verify_out.strip(),
        "quantized_accuracy": row.get("quantized_accuracy"),
        "float_accuracy": row.get("float_accuracy"),
    }


# --------------------------------------------------------------------------------------------- EZKL


class StepFailed(Exception):
    pass


class Ezkl:
    def __init__(self, work: Path):
        self.home = work / "ezkl-home"
        svm = self.home / ".local" / "share" / "svm" / EZKL_SOLC_VERSION
        svm.mkdir(parents=True)
        (svm / f"solc-{EZKL_SOLC_VERSION}").symlink_to(SOLC_ADAPTER)
        self.solc_log = work / "ezkl-solc-calls.log"
        self.env = {**os.environ, "HOME": str(self.home), "XDG_DATA_HOME": str(self.home / ".local" / "share"),
                    "ZKINFER_EZKL_SOLC_LOG": str(self.solc_log)}
        self.solc_calls: dict[str, list[dict]] = {}  # EZKL call -> the solc invocations it made
        self.srs_cache: dict[int, tuple[Path, float]] = {}
        self.srs_dir = work / "srs"
        self.srs_dir.mkdir()

    def step(self, d: Path, label: str, call: str, **kwargs) -> dict:
        """Runs one EZKL call in a child process; returns its result with the child's peak RSS."""
        spec, result = d / f"{label}.spec.json", d / f"{label}.result.json"
        seen = len(self.solc_log.read_text().splitlines()) if self.solc_log.exists() else 0
        spec.write_text(json.dumps({"call": call, "kwargs": {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()},
                                    "result": str(result)}))
        result.unlink(missing_ok=True)
        with open(d / f"{label}.log", "w") as out:
            p = subprocess.Popen([sys.executable, str(STEP), str(spec)], cwd=d, env=self.env,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                _, status, usage = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                raise StepFailed(f"ezkl.{call} ({label}) timed out after {STEP_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        tail = (d / f"{label}.log").read_text(errors="replace")[-2000:]
        if not result.exists():
            raise StepFailed(f"ezkl.{call} ({label}) died (exit {p.returncode}) without a result: {tail}")
        res = json.loads(result.read_text())
        if not res["ok"]:
            raise StepFailed(f"ezkl.{call} ({label}) raised {res['error']}\n{res.get('traceback', '')[-1500:]}")
        res["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
        if self.solc_log.exists():
            for line in self.solc_log.read_text().splitlines()[seen:]:
                self.solc_calls.setdefault(call, []).append(json.loads(line))
        return res

    def pipeline(self, name: str, mode: str, onnx: Path, x: list[float], calib: list[list[float]], work: Path,
                 runs: int, setup_runs: int, anvil: Anvil, eval_set: Path | None, accuracy_samples: int) -> dict:
        import ezkl  # the parent decodes field elements with EZKL's own helper

        d = work / name / f"ezkl-{mode}"
        d.mkdir(parents=True)
        r: dict = {"mode": mode, "steps": {}}
        st = r["steps"]

        def step(label, call, **kw):
            res = self.step(d, label, call, **kw)
            st[label] = {"seconds": res["seconds"], "peak_rss_bytes": res["peak_rss_bytes"]}
            return res

        settings, compiled = d / "settings.json", d / "model.compiled"
        vk, pk, witness, proof = d / "vk.key", d / "pk.key", d / "witness.json", d / "proof.json"
        sol, abi, addr_path, calldata = d / "Verifier.sol", d / "abi.json", d / "address.txt", d / "calldata.bin"
        (d / "input.json").write_text(json.dumps({"input_data": [x]}))
        # EZKL's calibration data: all samples concatenated, split by the model's input size.
        (d / "calibration.json").write_text(json.dumps({"input_data": [[v for s in calib for v in s]]}))

        log(f"{name}: EZKL ({mode}) gen_settings, calibrate_settings, compile_circuit")
        step("gen_settings", "gen_settings", model=onnx, output=settings,
             py_run_args={"param_visibility": mode, "input_visibility": "public", "output_visibility": "public"})
        step("calibrate_settings", "calibrate_settings", data=d / "calibration.json", model=onnx, settings=settings,
             target="resources")
        step("compile_circuit", "compile_circuit", model=onnx, compiled_circuit=compiled, settings_path=settings)
        s = json.loads(settings.read_text())
        logrows = s["run_args"]["logrows"]
        r["settings"] = {k: s["run_args"].get(k) for k in ("logrows", "input_scale", "param_scale", "scale_rebase_multiplier",
                                                           "param_visibility", "input_visibility", "output_visibility",
                                                           "check_mode", "decomp_base", "decomp_legs", "num_inner_cols")}
        r["settings"].update({k: s.get(k) for k in ("num_rows", "total_assignments", "total_const_size", "required_lookups",
                                                    "required_range_checks", "model_output_scales", "module_sizes")})

        if logrows in self.srs_cache:
            srs, srs_seconds = self.srs_cache[logrows]
            r["srs_reused"] = True
        else:
            srs = self.srs_dir / f"kzg{logrows}.srs"
            log(f"{name}: EZKL gen_srs logrows={logrows} (local, INSECURE: benchmarking only)")
            srs_seconds = step("gen_srs", "gen_srs", srs_path=srs, logrows=logrows)["seconds"]
            self.srs_cache[logrows] = (srs, srs_seconds)
            r["srs_reused"] = False
        r["srs_seconds"] = srs_seconds

        setups = []
        for i in range(setup_runs):
            log(f"{name}: EZKL ({mode}) setup {i + 1}/{setup_runs}")
            setups.append(step(f"setup_{i + 1}", "setup", model=compiled, vk_path=vk, pk_path=pk, srs_path=srs)["seconds"])
            if i == 0 and setups[0] >= CHEAP_SETUP_SECONDS:
                break
        r["keygen_seconds_runs"] = setups
        r["keygen_seconds"] = median(setups)

        log(f"{name}: EZKL ({mode}) gen_witness, prove x{runs}, verify")
        wkw = {"vk_path": vk, "srs_path": srs} if mode == "polycommit" else {}
        r["witness_seconds"] = step("gen_witness", "gen_witness", data=d / "input.json", model=compiled, output=witness, **wkw)["seconds"]
        proves = [step(f"prove_{i + 1}", "prove", witness=witness, model=compiled, pk_path=pk, proof_path=proof,
                       srs_path=srs)["seconds"] for i in range(runs)]
        r["prove_seconds_runs"] = proves
        r["prove_seconds"] = median(proves)
        # ezkl.prove reads its proving key from disk; gen_vk_from_pk_single reads the same key and does
        # little else, so its time approximates that share of the prove time.
        r["pk_read_seconds"] = step("gen_vk_from_pk_single", "gen_vk_from_pk_single", path_to_pk=pk,
                                    circuit_settings_path=settings, vk_output_path=d / "vk_from_pk.key")["seconds"]
        v = step("verify", "verify", proof_path=proof, settings_path=settings, vk_path=vk, srs_path=srs)
        r["verify_seconds"] = v["seconds"]
        r["native_verified"] = v["value"] is True

        log(f"{name}: EZKL ({mode}) create_evm_verifier, deploy_evm, verify_evm")
        step("create_evm_verifier", "create_evm_verifier", vk_path=vk, settings_path=settings, sol_code_path=sol,
             abi_path=abi, srs_path=srs)
        step("deploy_evm", "deploy_evm", addr_path=addr_path, rpc_url=anvil.url, sol_code_path=sol,
             optimizer_runs=OPTIMIZER_RUNS)
        address = addr_path.read_text().strip()
        ve = step("verify_evm", "verify_evm", addr_verifier=address, rpc_url=anvil.url, proof_path=proof)
        step("encode_evm_calldata", "encode_evm_calldata", proof=proof, calldata=calldata)
        data = calldata.read_bytes()
        call = anvil.rpc("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
        gas = anvil.rpc("eth_estimateGas", [{"to": address, "data": "0x" + data.hex()}])
        code = anvil.rpc("eth_getCode", [address, "latest"])["result"]
        tampered = bytearray(data)
        tampered[4 + 32 * 4 + 7] ^= 1  # inside the proof bytes, past the selector and ABI offsets
        bad = anvil.rpc("eth_call", [{"to": address, "data": "0x" + tampered.hex()}, "latest"])
        def returned_true(resp):
            out = resp.get("result")
            return out not in (None, "0x") and int(out, 16) == 1

        r["onchain_verified"] = ve["value"] is True and returned_true(call) and "result" in gas
        r["onchain_rejects_tampered"] = not returned_true(bad)
        r["verify_tx_gas"] = int(gas["result"], 16) if "result" in gas else None
        r["verifier_bytes"] = (len(code) - 2) // 2
        r["calldata_bytes"] = len(data)
        p = json.loads(proof.read_text())
        r["proof_bytes"] = len(p["proof"]) if isinstance(p["proof"], list) else (len(p["hex_proof"]) - 2) // 2
        r["pk_bytes"] = pk.stat().st_size
        n_out = math.prod(s["model_instance_shapes"][-1])
        scale = s["model_output_scales"][-1]
        r["outputs"] = [ezkl.felt_to_float(f, scale) for f in p["instances"][0][-n_out:]]
        r["prediction"] = argmax(r["outputs"])

        if eval_set is not None and accuracy_samples > 0:
            log(f"{name}: EZKL ({mode}) quantized accuracy on {eval_set.name} (gen_witness per sample)")
            acc = step("accuracy", "accuracy", eval_set=eval_set, compiled=compiled, settings=settings, limit=accuracy_samples)
            r["quantized_accuracy"] = acc["value"]["accuracy"]
            r["accuracy_samples"] = acc["value"]["samples"]

        r["peak_rss_bytes"], r["peak_step"] = max((v["peak_rss_bytes"], k) for k, v in st.items())
        # The whole setup a model owner runs, as zkinfer's `setup` does (import, SRS, keys, verifier).
        r["setup_seconds"] = (st["gen_settings"]["seconds"] + st["calibrate_settings"]["seconds"]
                              + st["compile_circuit"]["seconds"] + srs_seconds + r["keygen_seconds"]
                              + st["create_evm_verifier"]["seconds"])
        return r


# ------------------------------------------------------------------------------------------- report


def fmt_s(v):
    return "—" if v is None else (f"{v:.2f} s" if v >= 0.1 else f"{v * 1000:.1f} ms")


def fmt_bytes(v):
    if v is None:
        return "—"
    if v >= 1 << 20:
        return f"{v / (1 << 20):.1f} MiB"
    return f"{v:,} B"


def fmt_int(v):
    return "—" if v is None else f"{v:,}"


def ratio(a, b):
    a, b = (v[0] if isinstance(v, tuple) else v for v in (a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return f"{a / b:.2f}×"
    return ""


def agree_cell(tool: dict, chk: dict | None):
    if chk is None:
        return "—"
    mark = ("yes" if chk["same_argmax"] else "yes (float near tie)") if chk["ok"] else "NO, beyond tolerance"
    return f"{mark}: {chk['argmax']} vs float {chk['float_argmax']}, max abs dlogit {chk['max_abs_err']:.3f}"


def model_rows(m: dict) -> list[tuple[str, dict, str]]:
    """(metric, {tool: (display, number-for-ratio)}) for one model."""
    zk, fx, pc = m["zkinfer"], m["ezkl"].get("fixed"), m["ezkl"].get("polycommit")
    tools = {"zk": zk, "fixed": fx, "poly": pc}

    def rows_for(metric, get, fmt):
        cells = {}
        for key, t in tools.items():
            if t is None or "error" in t:
                cells[key] = ("failed" if t is not None else "—", None)
                continue
            v = get(key, t)
            cells[key] = (fmt(v), v)
        return (metric, cells)

    def size(key, t):
        if key == "zk":
            return f"k={t['k']} (2^{t['k']} rows), {t['advice_columns']} advice cols"
        return f"logrows={t['settings']['logrows']} (2^{t['settings']['logrows']} rows, {t['settings']['num_rows']:,} used)"

    def scales(key, t):
        if key == "zk":
            q = t["quantization"] or {}
            return f"in 2^{q.get('input_scale_bits')}, weights 2^{q.get('weight_scale_bits')}, act 2^{q.get('activation_scale_bits')}"
        return f"in 2^{t['settings']['input_scale']}, params 2^{t['settings']['param_scale']}, out 2^{t['settings']['model_output_scales'][-1]}"

    rows = [
        ("circuit size", {k: (size(k, t), 2 ** (t["k"] if k == "zk" else t["settings"]["logrows"]))
                          if t is not None and "error" not in t else ("failed" if t else "—", None) for k, t in tools.items()}),
        ("fixed-point scales", {k: (scales(k, t), None) if t is not None and "error" not in t else ("failed" if t else "—", None)
                                for k, t in tools.items()}),
        rows_for("setup, end to end (median)", lambda k, t: t["setup_seconds"], fmt_s),
        rows_for("of which SRS (insecure, local)", lambda k, t: (t["srs_seconds"], t.get("srs_reused")),
                 lambda v: fmt_s(v[0]) + (" (made for an earlier model, same logrows)" if v[1] else "")),
        rows_for("of which key generation (median)", lambda k, t: t["keygen_seconds"], fmt_s),
        rows_for("prove (median)", lambda k, t: t["prove_seconds"], fmt_s),
        rows_for("of which reading the proving key (≈)", lambda k, t: None if k == "zk" else t["pk_read_seconds"],
                 lambda v: "— (in memory)" if v is None else fmt_s(v)),
        rows_for("native verify", lambda k, t: t["verify_seconds"], fmt_s),
        rows_for("peak memory", lambda k, t: t["peak_rss_bytes"], fmt_bytes),
        rows_for("proving key", lambda k, t: t["pk_bytes"], fmt_bytes),
        rows_for("proof", lambda k, t: t["proof_bytes"], fmt_bytes),
        rows_for("verify calldata", lambda k, t: t["calldata_bytes"], fmt_bytes),
        rows_for("verifier bytecode (deployed)", lambda k, t: t["verifier_bytes"], fmt_bytes),
        rows_for("on-chain verify gas (tx)", lambda k, t: t["verify_tx_gas"], fmt_int),
        ("argmax agrees with float model", {k: (agree_cell(t, m["checks"].get(k)), None) if t is not None and "error" not in t
                                            else ("failed" if t else "—", None) for k, t in tools.items()}),
        rows_for("quantized accuracy (eval set)", lambda k, t: t.get("quantized_accuracy"),
                 lambda v: "—" if v is None else f"{100 * v:.2f}%"),
    ]
    return rows


def zk_error_summary(msg: str) -> str:
    """The line of a failed prover-node call that says why (its `Error:` line), else the first line."""
    lines = [l.strip() for l in msg.splitlines() if l.strip()]
    for l in reversed(lines):
        if l.startswith("Error:") or "error:" in l.lower():
            return f"{lines[0].split(':')[0]}: {l}"[:400]
    return lines[0][:400] if lines else "failed"


def fmt_secs(v):
    return "—" if v is None else (f"{v:.1f} s" if v >= 10 else f"{v:.2f} s")


def fmt_mib(v):
    return "—" if v is None else f"{v / (1 << 20):,.0f} MiB"


def target_misses(m: dict) -> list[str] | None:
    """Issue 9's targets this model misses in this run (None when a side did not complete)."""
    zk, ez = m["zkinfer"], m["ezkl"].get("fixed")
    if "error" in zk:
        return None
    out = []
    if zk["verify_tx_gas"] is not None and zk["verify_tx_gas"] > TARGETS["gas"]:
        out.append(f"gas > {TARGETS['gas'] // 1000}k")
    if zk["verifier_bytes"] is not None and zk["verifier_bytes"] > TARGETS["verifier"]:
        out.append(f"verifier > {TARGETS['verifier']:,} B")
    if ez is None or "error" in ez:
        return out
    prove_max = TARGETS["prove_zoo"] if m.get("kind") == "zoo" else TARGETS["prove"]
    for key, field, limit in (("prove", "prove_seconds", prove_max), ("setup", "setup_seconds", TARGETS["setup"]),
                              ("memory", "peak_rss_bytes", TARGETS["memory"])):
        a, b = zk.get(field), ez.get(field)
        if a is not None and b and a / b > limit:
            out.append(f"{key} {a / b:.2f}× > {limit}×")
    return out


def summary_table(results: dict) -> str:
    """One line per model: zkinfer | EZKL (fixed) | ratio for each headline metric, and issue 9's targets."""
    head = ["model", "params", "zkinfer k / advice cols", "EZKL logrows", "setup zk / EZKL", "×", "× without SRS",
            "prove zk / EZKL", "×",
            "peak mem zk / EZKL", "×", "proof B zk / EZKL", "verifier B zk / EZKL", "verify gas zk / EZKL", "×",
            "targets missed (issue 9)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results.items():
        zk, ez = m.get("zkinfer") or {"error": "not run", "why": "not run"}, m["ezkl"].get("fixed")
        zk_ok, ez_ok = "error" not in zk, ez is not None and "error" not in ez

        def pair(field, fmt):
            a = fmt(zk.get(field)) if zk_ok else "failed"
            b = fmt(ez.get(field)) if ez_ok else ("failed" if ez else "—")
            r = ratio(zk.get(field), ez.get(field)) if zk_ok and ez_ok else ""
            return [f"{a} / {b}", r]

        params = m.get("parameters")
        row = [name, f"{params:,}" if params else "—",
               f"{zk['k']} / {zk['advice_columns']}" if zk_ok else f"failed: {zk['why']}",
               str(ez["settings"]["logrows"]) if ez_ok else ("failed: " + ez["error"].splitlines()[0][:200] if ez else "—")]
        no_srs = ""
        if zk_ok and ez_ok and None not in (zk.get("setup_seconds"), zk.get("srs_seconds"), ez.get("srs_seconds")):
            no_srs = ratio(zk["setup_seconds"] - zk["srs_seconds"], ez["setup_seconds"] - ez["srs_seconds"])
        row += pair("setup_seconds", fmt_secs) + [no_srs] + pair("prove_seconds", fmt_secs) + pair("peak_rss_bytes", fmt_mib)
        row += [pair("proof_bytes", fmt_int)[0], pair("verifier_bytes", fmt_int)[0]] + pair("verify_tx_gas", fmt_int)
        misses = target_misses(m)
        row.append("— (zkinfer did not complete)" if misses is None else ("none" if not misses else ", ".join(misses))
                   + ("" if ez_ok else " (EZKL ratios unavailable)"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


SUMMARY_NOTES = (f"Targets (issue 9, per model, this run): prove ≤ {TARGETS['prove']}× EZKL (zoo models ≤ {TARGETS['prove_zoo']}×), "
                 f"setup ≤ {TARGETS['setup']}×, peak memory ≤ {TARGETS['memory']}×, verify gas ≤ {TARGETS['gas']:,}, "
                 f"verifier ≤ {TARGETS['verifier']:,} B. EZKL = param_visibility fixed. Medians where several runs were made; "
                 "the notes below say what each number includes. \"× without SRS\": both setups minus their SRS step "
                 "(zkinfer loads its dev SRS from an on-disk cache once it exists; EZKL generates one per run and logrows).")


def markdown_table(results: dict, polycommit: bool) -> str:
    head = ["model", "metric", "zkinfer", "EZKL (fixed)", "zkinfer / EZKL"]
    if polycommit:
        head += ["EZKL (polycommit)", "zkinfer / EZKL (polycommit)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in results.items():
        for i, (metric, cells) in enumerate(model_rows(m)):
            zk, fx, pc = cells["zk"], cells["fixed"], cells["poly"]
            row = [name if i == 0 else "", metric, zk[0], fx[0], ratio(zk[1], fx[1])]
            if polycommit:
                row += [pc[0], ratio(zk[1], pc[1])]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def chart(results: dict, path: Path, polycommit: bool):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(results)
    series = [("zkinfer", "zk", "#1f77b4"), ("EZKL (fixed)", "fixed", "#ff7f0e")]
    if polycommit:
        series.append(("EZKL (polycommit)", "poly", "#2ca02c"))

    def value(m, key, field):
        t = m["zkinfer"] if key == "zk" else m["ezkl"].get({"fixed": "fixed", "poly": "polycommit"}[key])
        return None if t is None or "error" in t else t.get(field)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(series)
    for ax, field, title, fmt in ((axes[0], "prove_seconds", "prove time (median, s)", "{:.2f}"),
                                  (axes[1], "verify_tx_gas", "on-chain verify gas (tx)", "{:,.0f}")):
        for j, (label, key, color) in enumerate(series):
            xs, ys = [], []
            for i, n in enumerate(names):
                v = value(results[n], key, field)
                if v is not None:
                    xs.append(i + (j - (len(series) - 1) / 2) * width)
                    ys.append(v)
            bars = ax.bar(xs, ys, width, label=label, color=color)
            ax.bar_label(bars, labels=[fmt.format(y) for y in ys], fontsize=7, padding=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1000 else f"{v:g}"))
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("zkinfer vs EZKL 23.0.5 — same models, inputs and machine, one run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def first_line(cmd, pick=None):
    try:
        out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
        lines = [l.strip() for l in out.splitlines() if l.strip()]
        if pick:
            lines = [l for l in lines if pick in l] or lines
        return lines[0] if lines else "?"
    except Exception as e:  # noqa: BLE001 - context only
        return f"? ({e})"


def loadavg() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def context() -> dict:
    import ezkl
    import numpy
    import onnxruntime

    cpu = "?"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception:  # noqa: BLE001
        pass
    mem = "?"
    try:
        kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
        mem = f"{kb / (1 << 20):.0f} GiB"
    except Exception:  # noqa: BLE001
        pass
    commit = first_line(["git", "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} {platform.release()}; the benchmark runs one job at a time, but the machine is shared (load below)",
        "zkinfer": (f"{first_line([PROVER_NODE, '--version'])}, target/release/prover-node built "
                    f"{dt.datetime.fromtimestamp(PROVER_NODE.stat().st_mtime, dt.timezone.utc):%Y-%m-%d %H:%M UTC}; "
                    f"tree at git {commit}{' with uncommitted changes' if dirty else ''}"),
        "ezkl": f"ezkl {ezkl.__version__} (Python API)",
        "python": f"Python {platform.python_version()}, numpy {numpy.__version__}, onnxruntime {onnxruntime.__version__}",
        "solc": first_line([SOLC, "--version"], "Version") + " (solc-js via scripts/solc, both tools)",
        "anvil": first_line([ANVIL, "--version"]) + " --hardfork prague",
    }


NOTES = """\
How to read this (all numbers above come from this run):
- Same ONNX file and same input (`models/zoo/<model>.input.json`) for both tools; the float reference is
  onnxruntime on that ONNX. "argmax agrees" requires every dequantized logit within {tol} of the float
  logit and the same argmax (an argmax flip is tolerated only if the float top-two margin is ≤ 2×{tol}).
- Times are wall-clock; "(median)" = median of the runs listed in the raw JSON ({runs} prove runs per tool,
  setup repeated {runs}× when its first run took < {cheap:.0f} s).
  zkinfer prove = `prover-node bench --child` (in-process, keys already loaded). EZKL prove = `ezkl.prove`
  in a fresh process, which also reads its proving key and SRS from disk (the "reading the proving key"
  row times `ezkl.gen_vk_from_pk_single`, which reads the same key, to show how much of it that is).
  zkinfer setup = wall time of `prover-node setup --insecure-dev-srs` (ONNX import, quantization, eval-set
  accuracy, dev SRS, keys, Solidity verifier generation + compilation); its SRS / key-generation parts are
  read from the timestamps of its own log. EZKL setup = gen_settings + calibrate_settings + compile_circuit
  + gen_srs + setup (median) + create_evm_verifier.
- SRS: both tools use an INSECURE SRS made on this machine (zkinfer: derived from a public seed; EZKL:
  `ezkl.gen_srs`, its local generator, because EZKL cannot download one here). Benchmarking only: anyone
  who knows the toxic waste can forge proofs.
- EZKL: param_visibility "fixed" (weights in fixed columns of the verifying key, as in zkinfer), input and
  output visibility "public", calibrate_settings(target="resources") on {calib} samples (the benchmark input
  + the first eval-set samples); scales and logrows are EZKL's own choice (listed below).
  "polycommit" puts the weights in a KZG commitment inside the proof instead: its verifier accepts any
  weights whose commitment the caller then has to check, so it is not a like-for-like replacement.
- Peak memory: zkinfer = VmHWM of the `bench --child` process (setup, {runs} proofs, verify, deploy).
  EZKL = the largest peak RSS of any single step (each step is its own process; Python + `import ezkl`
  included), the step is named in the raw JSON.
  A step that only starts Python and imports ezkl peaks at {baseline}.
- Gas = `eth_estimateGas` of a call to the deployed verifier with the proof's calldata (intrinsic and
  calldata cost included), for both tools, on anvil --hardfork prague (zkinfer's `bench --child` starts its
  own anvil, EZKL's verifier is deployed with `ezkl.deploy_evm` on this run's). Both verifiers are compiled
  by the same solc-js 0.8.30 (`scripts/solc`). zkinfer's settings (contracts/solc-settings.json):
  {zk_solc}. EZKL's, as it sent them: {ezkl_solc} (the deployed, measured bytecode is deploy_evm's).
- EZKL compiles its verifier through foundry-compilers/svm, which would download solc 0.8.20; instead
  `scripts/ezkl/solc-adapter` is linked where svm looks for it (inside a throwaway HOME) and runs
  `scripts/solc`. EZKL called it only as: {solc_calls}.
"""


def solc_settings(s: dict) -> str:
    opt = s.get("optimizer") or {}
    yul = (opt.get("details") or {}).get("yul")
    return (f"optimizer {'on' if opt.get('enabled') else 'off'}, {opt.get('runs')} runs"
            f"{', Yul optimizer ' + ('solc default (on)' if yul is None else ('on' if yul else 'off')) if opt.get('enabled') else ''}, "
            f"evmVersion {s.get('evmVersion') or 'solc default'}, viaIR {bool(s.get('viaIR'))}")


def report(results: dict, ctx: dict, args, total_seconds: float, summary: str, table: str, polycommit_note: str,
           incomplete: list[str]) -> str:
    out = [f"# zkinfer vs EZKL — {ctx['date']}", ""]
    out += [f"- machine: {ctx['machine']}", f"- zkinfer: {ctx['zkinfer']}", f"- EZKL: {ctx['ezkl']}",
            f"- {ctx['python']}", f"- solc: {ctx['solc']}", f"- anvil: {ctx['anvil']}",
            f"- command: `{' '.join(['scripts/bench-vs-ezkl', *args.argv])}`",
            f"- runs: {args.runs}; models: {', '.join(results)}; total wall time of the run: {total_seconds / 60:.1f} min", ""]
    out += ["## Summary", "", summary, "", SUMMARY_NOTES, ""]
    if incomplete:
        out += ["Did not complete (the run went on):", ""] + [f"- {f}" for f in incomplete] + [""]
    out += ["## Every metric", "", table, ""]
    if polycommit_note:
        out += [polycommit_note, ""]
    out += ["## Settings each tool chose", ""]
    for name, m in results.items():
        zk = m["zkinfer"]
        if "error" in zk:
            out.append(f"- {name}, zkinfer: did not complete — {zk['why']}")
        else:
            q = zk["quantization"] or {}
            out.append(f"- {name}, zkinfer: k={zk['k']}, {zk['advice_columns']} advice columns, input 2^{q.get('input_scale_bits')}, "
                       f"weights 2^{q.get('weight_scale_bits')}, activations 2^{q.get('activation_scale_bits')}, "
                       f"values ≤ {q.get('value_bits')} signed bits, output 2^{zk.get('output_scale_bits')}")
        for mode, t in m["ezkl"].items():
            if "error" in t:
                out.append(f"- {name}, EZKL {mode}: failed — {t['error'].splitlines()[0]}")
                continue
            s = t["settings"]
            out.append(f"- {name}, EZKL {mode}: logrows={s['logrows']} ({s['num_rows']:,} rows used), input_scale={s['input_scale']}, "
                       f"param_scale={s['param_scale']}, output scale={s['model_output_scales']}, rebase multiplier={s['scale_rebase_multiplier']}, "
                       f"range checks {s['required_range_checks']}, lookups {s['required_lookups'] or 'none'}, "
                       f"decomp base {s['decomp_base']}×{s['decomp_legs']} legs, check_mode {s['check_mode']}, "
                       f"peak-memory step {t['peak_step']}")
    out += ["", NOTES.format(tol=args.tolerance, runs=args.runs, cheap=CHEAP_SETUP_SECONDS, calib=args.calibration_samples,
                              solc_calls=args.solc_calls, ezkl_solc=args.ezkl_solc, zk_solc=args.zk_solc,
                              baseline=fmt_bytes(args.baseline_rss))]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- main


def zoo_models() -> list[str]:
    return sorted(p.stem for p in ZOO.glob("*.onnx"))


def resolve_model(name: str, work: Path) -> dict:
    """Files of one model: a zoo name, a mid-size name (build/bench-models) or a path to an ONNX file.

    A model given by path uses `<stem>.input.json` and `<stem>.meta.json` beside it when present; without an
    input file, a seeded random input over the metadata's input range (else [0, 1]) is written beside a copy
    of the model in the work directory, so both tools read the same file."""
    if name in MID:
        onnx, kind = BENCH_MODELS / f"{name}.onnx", "mid"
    elif (ZOO / f"{name}.onnx").exists():
        onnx, kind = ZOO / f"{name}.onnx", "zoo"
    else:
        onnx, kind = Path(name).resolve(), "file"
        name = onnx.stem
    meta_path = onnx.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    eval_set = meta_path.parent / meta["eval_set"] if meta.get("eval_set") else None
    if eval_set is not None and not eval_set.exists():
        eval_set = None
    input_file = onnx.with_suffix(".input.json")
    if not input_file.exists():
        import numpy as np
        import onnxruntime as ort

        shape = [d if isinstance(d, int) and d > 0 else 1 for d in
                 ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].shape]
        lo, hi = meta.get("input_range", [0.0, 1.0])
        x = np.random.default_rng(0).uniform(lo, hi, math.prod(shape))
        d = work / "inputs" / name
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(onnx, d / onnx.name)
        for extra in (meta_path, eval_set):
            if extra is not None and extra.exists():
                shutil.copy(extra, d / extra.name)
        onnx, input_file = d / onnx.name, d / f"{name}.input.json"
        input_file.write_text(json.dumps({"input": [round(float(v), 4) for v in x]}))
        log(f"{name}: no {name}.input.json beside the model: using a seeded random input in [{lo}, {hi}]")
    return {"name": name, "kind": kind, "onnx": onnx, "input": input_file, "meta": meta, "eval_set": eval_set,
            "parameters": meta.get("parameters") or onnx_parameters(onnx)}


def onnx_parameters(path: Path):
    try:
        import onnx

        m = onnx.load(str(path))
        return sum(math.prod(t.dims) for t in m.graph.initializer)
    except Exception:  # noqa: BLE001 - informational
        return None


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="scripts/bench-vs-ezkl", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=f"""model sets:
  default  {', '.join(ZOO_DEFAULT + MID)} (the fast zoo models + the mid-size models of issue 9)
  --zoo    every model of models/zoo ({', '.join(zoo_models())})
  --mid    {', '.join(MID)}
  --models any comma-separated mix of zoo names, mid-size names and paths to ONNX files
The mid-size models are generated by models/bench/gen (seeded, trained on the digits upsampled) into
build/bench-models/ when missing. A default run takes about an hour on 2 cores (EZKL's side is most of it).""")
    ap.add_argument("--runs", type=int, default=3, help="prove (and cheap setup) runs per tool; the median is reported")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--models", default=None, help="comma-separated model names or ONNX paths (default: see below)")
    g.add_argument("--mid", action="store_true", help="only the mid-size models")
    g.add_argument("--zoo", action="store_true", help="only the models of models/zoo (all of them)")
    ap.add_argument("--smoke", action="store_true",
                    help="one model, one run, no polycommit, no accuracy pass; report goes to a temporary directory")
    ap.add_argument("--out-dir", type=Path, default=None, help=f"report directory (default: {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--tolerance", type=float, default=0.25, help="max |dequantized - float| logit error (default 0.25)")
    ap.add_argument("--calibration-samples", type=int, default=16, help="samples for EZKL's calibrate_settings")
    ap.add_argument("--accuracy-samples", type=int, default=None,
                    help="eval-set samples for EZKL's quantized accuracy, one gen_witness each (0: skip; default: "
                         "the whole eval set for zoo models, 100 for the others)")
    ap.add_argument("--polycommit", action="store_true", help="also run EZKL with param_visibility polycommit (a second "
                    "EZKL pipeline per model; default only for zoo models)")
    ap.add_argument("--no-polycommit", action="store_true", help="skip the extra EZKL polycommit column everywhere")
    ap.add_argument("--keep-work", action="store_true", help="keep the working directory (keys, proofs, logs)")
    args = ap.parse_args(argv)
    args.argv = argv
    args.baseline_rss = None
    available = zoo_models()
    if args.models:
        args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    elif args.mid:
        args.models = list(MID)
    elif args.zoo:
        args.models = available
    else:
        args.models = ZOO_DEFAULT + MID
    for m in args.models:
        if m not in available and m not in MID and not (m.endswith(".onnx") and Path(m).exists()):
            ap.error(f"unknown model {m!r}: not in models/zoo ({', '.join(available)}), not a mid-size model "
                     f"({', '.join(MID)}), not an existing .onnx file")
    if args.smoke:
        args.models, args.runs, args.no_polycommit = args.models[:1], 1, True
        if args.accuracy_samples is None:
            args.accuracy_samples = 0
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def generate_mid_models(names: list[str]):
    mid = [m for m in names if m in MID]
    if not mid:
        return
    log(f"models/bench/gen --models {','.join(mid)} (generates what is missing into {BENCH_MODELS.relative_to(ROOT)})")
    p = subprocess.run([str(GEN_MODELS), "--models", ",".join(mid)], cwd=ROOT, capture_output=True, text=True)
    sys.stderr.write("".join(f"  {l}\n" for l in p.stderr.splitlines()[-12:]))
    if p.returncode != 0:
        raise BenchError(f"models/bench/gen failed (exit {p.returncode})")


def main(argv) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    args.load_start = loadavg()
    for path, hint in ((PROVER_NODE, "cargo build --release -p prover-node"), (ANVIL, "scripts/setup"),
                       (SOLC, "scripts/setup"), (ROOT / "node_modules" / "solc", "scripts/setup")):
        if not path.exists():
            raise BenchError(f"{path} is missing: run {hint}")
    out_dir = args.out_dir or (Path(tempfile.mkdtemp(prefix="bench-vs-ezkl-smoke-")) if args.smoke else DEFAULT_OUT)
    work = Path(tempfile.mkdtemp(prefix="bench-vs-ezkl-"))
    log(f"work dir {work}; models {', '.join(args.models)}; {args.runs} run(s)")
    generate_mid_models(args.models)
    failures: list[str] = []     # wrong results: exit 1
    incomplete: list[str] = []   # a tool could not set up / prove a model: reported, exit 2
    results: dict = {}
    polycommit_note = ""
    anvil = ez = None
    try:
        anvil = Anvil(work)
        log(f"anvil at {anvil.url} (pid {anvil.proc.pid})")
        ez = Ezkl(work)
        args.baseline_rss = ez.step(work, "baseline", "noop")["peak_rss_bytes"]
        for spec in (resolve_model(m, work) for m in args.models):
            name, onnx, input_file, eval_set = spec["name"], spec["onnx"], spec["input"], spec["eval_set"]
            x = [float(v) for v in json.loads(input_file.read_text())["input"]]
            eval_inputs = json.loads(eval_set.read_text())["inputs"] if eval_set else []
            calib = [x] + eval_inputs[: max(0, args.calibration_samples - 1)]
            acc_n = ((len(eval_inputs) if spec["kind"] == "zoo" else min(100, len(eval_inputs)))
                     if args.accuracy_samples is None else args.accuracy_samples)

            _, _, _, ref = float_reference(onnx, x)
            m = {"kind": spec["kind"], "onnx": str(onnx), "parameters": spec["parameters"], "float_outputs": ref,
                 "float_prediction": argmax(ref), "ezkl": {}, "checks": {}}
            if eval_set and acc_n > 0:
                m["float_accuracy_onnxruntime"], _ = float_accuracy(onnx, eval_set, acc_n)
            results[name] = m

            setup_runs = args.runs
            try:
                zk = zkinfer_side(name, onnx, input_file, work, args.runs, setup_runs, anvil)
            except (BenchError, OSError, ValueError, KeyError, IndexError) as e:
                msg = ANSI.sub("", str(e))
                log(f"{name}: zkinfer did not complete, reported as such: {msg.splitlines()[0]}")
                zk = {"error": msg, "why": zk_error_summary(msg)}
                incomplete.append(f"{name}: zkinfer: {zk['why']}")
            m["zkinfer"] = zk
            if "error" not in zk:
                if not zk["native_verified"] or not zk["onchain_verified"]:
                    failures.append(f"{name}: zkinfer proof did not verify (native {zk['native_verified']}, on-chain "
                                    f"{zk['onchain_verified']}): {zk['verify_output']}")
                m["checks"]["zk"] = check_outputs(f"{name} zkinfer", zk["outputs"], ref, args.tolerance)

            poly = (args.polycommit or spec["kind"] == "zoo") and not args.no_polycommit
            modes = ["fixed"] + (["polycommit"] if poly else [])
            for mode in modes:
                key = "fixed" if mode == "fixed" else "poly"
                try:
                    t = ez.pipeline(name, mode, onnx, x, calib, work, args.runs, setup_runs, anvil,
                                    eval_set if mode == "fixed" else None, acc_n)
                except StepFailed as e:
                    log(f"{name}: EZKL ({mode}) failed, reported as such: {str(e).splitlines()[0]}")
                    m["ezkl"][mode] = {"error": str(e)}
                    if mode == "fixed":
                        incomplete.append(f"{name}: EZKL ({mode}): {str(e).splitlines()[0]}")
                    else:
                        polycommit_note += f"EZKL polycommit on {name} failed in this run: {str(e).splitlines()[0]}\n"
                    continue
                m["ezkl"][mode] = t
                if not t["native_verified"] or not t["onchain_verified"]:
                    failures.append(f"{name}: EZKL ({mode}) proof did not verify (native {t['native_verified']}, "
                                    f"on-chain {t['onchain_verified']})")
                if not t["onchain_rejects_tampered"]:
                    failures.append(f"{name}: EZKL ({mode}) verifier accepted a tampered proof")
                m["checks"][key] = check_outputs(f"{name} EZKL {mode}", t["outputs"], ref, args.tolerance)
            for chk in m["checks"].values():
                if not chk["ok"]:
                    failures.append(chk["why"])
            # the summary so far, so a long run shows its numbers as it goes
            log("summary so far:\n" + summary_table(results))
    finally:
        if anvil is not None:
            anvil.stop()

    total = time.monotonic() - started
    by_step = ez.solc_calls if ez is not None else {}
    calls = [c for cs in by_step.values() for c in cs]
    args.solc_calls = ", ".join(sorted({f"`solc {' '.join(c['args'])}`" for c in calls})) or "never"
    args.ezkl_solc = "; ".join(f"{step} {' / '.join(sorted({solc_settings(c) for c in cs}))}"
                               for step, cs in by_step.items() if cs) or "—"
    try:
        args.zk_solc = solc_settings(json.loads((ROOT / "contracts" / "solc-settings.json").read_text())["settings"])
    except (OSError, KeyError, ValueError):
        args.zk_solc = "?"
    polycommit = any("polycommit" in m["ezkl"] for m in results.values())
    summary = summary_table(results)
    table = markdown_table(results, polycommit)
    print(summary)
    print()
    print(table)
    print(f"\ntotal wall time {total / 60:.1f} min ({args.runs} run(s); raw numbers and notes in the report)")
    if incomplete:
        print("\nDID NOT COMPLETE (reported in the tables, the run went on):", file=sys.stderr)
        for f in incomplete:
            print(f"  - {f}", file=sys.stderr)
    if failures:
        print("\nFAILED:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        print(f"(report not written; work dir kept at {work})", file=sys.stderr)
        return 1

    ctx = context()
    ctx["machine"] += f"; load average (1/5/15 min) {args.load_start} at start, {loadavg()} at end"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.md").write_text(report(results, ctx, args, total, summary, table, polycommit_note, incomplete))
    (out_dir / "latest.json").write_text(json.dumps({"context": ctx, "runs": args.runs, "tolerance": args.tolerance,
                                                     "total_seconds": total, "models": results}, indent=1, default=str))
    chart(results, out_dir / "latest.png", polycommit)
    log(f"wrote {out_dir / 'latest.md'}, latest.json and latest.png")
    if args.keep_work or incomplete:
        log(f"work dir kept at {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 2 if incomplete else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as e:
        print(f"\n[bench-vs-ezkl] FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
