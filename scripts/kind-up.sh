#!/usr/bin/env bash
# scripts/kind-up.sh N — creates N kind clusters (panoptes-1 … panoptes-N) and writes
# clusters.kind.toml with one [[clusters]] entry per cluster's context.
#
#   scripts/kind-up.sh 3
#   panoptes check --config clusters.kind.toml
#   panoptes run   --config clusters.kind.toml
#   scripts/kind-down.sh
#
# The kind contexts go into their own kubeconfig (kind.kubeconfig, next to the output file)
# so ~/.kube/config is left alone. The TOML is written by `panoptes config from-kubeconfig`,
# the part tests run without docker. Environment:
#   PANOPTES      the panoptes command (default: target/release/panoptes, else `cargo run`)
#   KIND          the kind command (default: kind)
#   OUTPUT        the file to write (default: clusters.kind.toml)
#   KUBECONFIG_OUT where kind writes the contexts (default: kind.kubeconfig)
set -euo pipefail

count="${1:-2}"
if ! [[ "$count" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 N   (N >= 1 kind clusters to create)" >&2
    exit 2
fi
kind="${KIND:-kind}"
output="${OUTPUT:-clusters.kind.toml}"
kubeconfig="${KUBECONFIG_OUT:-kind.kubeconfig}"
repo="$(cd "$(dirname "$0")/.." && pwd)"

if ! command -v "$kind" >/dev/null 2>&1; then
    echo "kind is not installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation" >&2
    exit 1
fi

if [[ -n "${PANOPTES:-}" ]]; then
    read -r -a panoptes <<<"$PANOPTES"
elif [[ -x "$repo/target/release/panoptes" ]]; then
    panoptes=("$repo/target/release/panoptes")
else
    panoptes=(cargo run --quiet --manifest-path "$repo/Cargo.toml" --bin panoptes --)
fi

existing="$("$kind" get clusters 2>/dev/null || true)"
contexts=()
for i in $(seq 1 "$count"); do
    name="panoptes-$i"
    if grep -qx "$name" <<<"$existing"; then
        echo "kind cluster $name exists; exporting its kubeconfig"
        "$kind" export kubeconfig --name "$name" --kubeconfig "$kubeconfig"
    else
        "$kind" create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 120s
    fi
    contexts+=("kind-$name")
done

joined="$(IFS=,; echo "${contexts[*]}")"
"${panoptes[@]}" config from-kubeconfig --kubeconfig "$kubeconfig" --contexts "$joined" --output "$output"
echo "next: ${panoptes[*]} check --config $output"
