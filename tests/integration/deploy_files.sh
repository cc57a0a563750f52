#!/usr/bin/env bash
# deploy_files: the files of deploy/ are accepted by the programs and tools
# they are for, as far as this machine can check without Docker, a cluster
# or systemd as PID 1: every [section] of the INI files by its program
# (--print-config exits 0 only when every key and value is good), the
# systemd unit by `systemd-analyze verify`, the Kubernetes manifests by
# `kubectl kustomize`, the Prometheus scrape configuration by promtool, the
# YAML files by a YAML parser, the Slurm script by bash -n with --shard auto
# resolved from a Slurm array's variables. Each tool that is missing is
# named as skipped.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
SEFL_PASSED=0 SEFL_FAILED=0
D=$(mktemp -d /tmp/sefl-deploy.XXXXXX)
trap 'rm -rf "$D"' EXIT

for ini in deploy/sefl.ini deploy/k8s/sefl.ini; do
    sefl_check "$ini: sefl-server accepts its section" \
        sh -c "'$BIN/sefl-server' --config '$ini' --print-config >'$D/s.ini' 2>'$D/s.err'"
    sefl_check "  and its effective settings read back the same" \
        sh -c "'$BIN/sefl-server' --config '$D/s.ini' --print-config | cmp -s - '$D/s.ini'"
    sefl_check "$ini: sefl-sim accepts its section" \
        sh -c "JOB_COMPLETION_INDEX=1 JOB_COMPLETIONS=2 '$BIN/sefl-sim' --config '$ini' --print-config | grep -q '^partition = pat:2$'"
done
sefl_check "deploy/sefl.ini: sefl-certs accepts its section" \
    sh -c "'$BIN/sefl-certs' init --config deploy/sefl.ini --print-config | grep -qx 'server-name = coordinator'"

if command -v systemd-analyze >/dev/null; then
    # verify wants ExecStart's binary to exist: point it at the build's.
    sed "s|/usr/local/bin/sefl-server|$PWD/$BIN/sefl-server|" deploy/sefl-server.service \
        >"$D/sefl-server.service"
    sefl_check "systemd-analyze verify: the unit is clean" \
        sh -c "systemd-analyze verify '$D/sefl-server.service' >'$D/verify.log' 2>&1 && [ ! -s '$D/verify.log' ]"
    sefl_check "  and does not restart on a configuration error (exit 2) or a collapsed model (3)" \
        grep -qx 'RestartPreventExitStatus=2 3' deploy/sefl-server.service
else
    echo "skipped: systemd-analyze is not installed"
fi

if command -v kubectl >/dev/null; then
    sefl_check "kubectl kustomize deploy/k8s renders the ConfigMap, Service, PVC and both Jobs" \
        sh -c "kubectl kustomize deploy/k8s | grep -E '^kind: ' | sort | tr '\n' ' ' | grep -qx 'kind: ConfigMap kind: Job kind: Job kind: PersistentVolumeClaim kind: Service '"
    sefl_check "  the coordinator's probes and scrape annotation point at its HTTP port" \
        sh -c "kubectl kustomize deploy/k8s | grep -c -E 'path: /(healthz|readyz)|prometheus.io/port: \"9464\"' | grep -qx 3"
else
    echo "skipped: kubectl is not installed (kustomize rendering)"
fi

if command -v promtool >/dev/null; then
    if promtool check config deploy/prometheus.yml >"$D/prom.log" 2>&1; then
        sefl_check "promtool check config deploy/prometheus.yml" true
    elif grep -q 'kubernetes_sd_configs not found' "$D/prom.log"; then
        # Debian builds Prometheus without Kubernetes discovery: check the rest.
        python3 - deploy/prometheus.yml "$D/prom.yml" <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
c["scrape_configs"] = [s for s in c["scrape_configs"] if "kubernetes_sd_configs" not in s]
yaml.safe_dump(c, open(sys.argv[2], "w"))
PY
        echo "(this promtool has no kubernetes_sd_configs: the sefl-kubernetes job is left out)"
        sefl_check "promtool check config deploy/prometheus.yml (without the Kubernetes job)" \
            promtool check config "$D/prom.yml"
    else
        cat "$D/prom.log"
        sefl_check "promtool check config deploy/prometheus.yml" false
    fi
else
    echo "skipped: promtool is not installed"
fi

if python3 -c 'import yaml' 2>/dev/null; then
    for y in deploy/compose.yaml deploy/prometheus.yml deploy/k8s/*.yaml; do
        sefl_check "$y parses as YAML" python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$y"
    done
else
    echo "skipped: python3 yaml module missing (YAML parse)"
fi

sefl_check "deploy/slurm/sefl-sim.sbatch: bash -n" bash -n deploy/slurm/sefl-sim.sbatch
sefl_check "  --shard auto takes a Slurm array task (2 of --array=1-4)" \
    sh -c "SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=4 '$BIN/sefl-sim' --config deploy/sefl.ini --shard auto --print-config >/dev/null"
sefl_check "  a task index past the count is refused" \
    sh -c "! SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=4 '$BIN/sefl-sim' --config deploy/sefl.ini --shard auto --print-config 2>/dev/null"
sefl_summary
