#!/usr/bin/env python3
"""Checks a GitHub Actions workflow: YAML that parses, an `on` trigger, jobs
with runs-on and steps, each step `uses` or a `run` string that bash -n
accepts. Prints what is wrong and exits 1; exit 0 when the file is sound."""
import subprocess
import sys

import yaml


def main(path):
    errors = []
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        return [f"{path}: not a mapping"]
    # YAML 1.1 reads the key `on` as true
    if "on" not in doc and True not in doc:
        errors.append(f"{path}: no `on:` trigger")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        return errors + [f"{path}: no jobs"]
    for name, job in jobs.items():
        if not isinstance(job, dict) or "runs-on" not in job:
            errors.append(f"{path}: job {name}: no runs-on")
            continue
        needs = job.get("needs") or []
        for need in [needs] if isinstance(needs, str) else needs:
            if need not in jobs:
                errors.append(f"{path}: job {name}: needs unknown job {need}")
        steps = job.get("steps")
        if not isinstance(steps, list) or not steps:
            errors.append(f"{path}: job {name}: no steps")
            continue
        for i, step in enumerate(steps):
            if not isinstance(step, dict) or ("uses" in step) == ("run" in step):
                errors.append(f"{path}: job {name} step {i}: needs exactly one of uses/run")
                continue
            if "run" in step:
                run = step["run"]
                if not isinstance(run, str):
                    errors.append(f"{path}: job {name} step {i}: run is not a string")
                    continue
                r = subprocess.run(["bash", "-n"], input=run, text=True, capture_output=True)
                if r.returncode != 0:
                    errors.append(f"{path}: job {name} step {i}: bash -n: {r.stderr.strip()}")
    return errors


if __name__ == "__main__":
    errs = []
    for p in sys.argv[1:]:
        errs += main(p)
    for e in errs:
        print(e)
    sys.exit(1 if errs else 0)
