#!/usr/bin/env bash
# scripts/kind-down.sh — deletes every kind cluster scripts/kind-up.sh created
# (panoptes-1 … panoptes-N) and the files it wrote (kind.kubeconfig, clusters.kind.toml).
# Environment: KIND, OUTPUT and KUBECONFIG_OUT as for kind-up.sh.
set -euo pipefail

kind="${KIND:-kind}"
output="${OUTPUT:-clusters.kind.toml}"
kubeconfig="${KUBECONFIG_OUT:-kind.kubeconfig}"

if ! command -v "$kind" >/dev/null 2>&1; then
    echo "kind is not installed; nothing to delete" >&2
    exit 1
fi
for name in $("$kind" get clusters 2>/dev/null | grep -E '^panoptes-[0-9]+$' || true); do
    "$kind" delete cluster --name "$name" --kubeconfig "$kubeconfig"
done
rm -f "$kubeconfig" "$output"
