#!/bin/bash
# layers.sh: fails when a source file includes a layer it may not.
#
# The layers (README.md, "Layout"), from the bottom up:
#   common/        log, rng, hash, store, cli: the small shared pieces
#   common/nn/     the neural network (params, layers, gemm, model, optim)
#   common/net/    the transport (frame, tls, conn)
#   common/data/   the data (idx, dataset, partition)
#   common/fl/     what the coordinator and clients share on top of those:
#                  wire (protobuf messages carrying nn tensors) and state
#                  (server.db)
#   server/, client/  the programs and their modules
# A layer includes its own folder and the ones it is allowed below; nn, net
# and data never include each other, server and client never include each
# other, and tests may include anything. Includes name their folder from the
# repository root, so a bare name ("conn.h") is refused as well.
#
# Usage: bash tests/layers.sh [ROOT]   (prints one line per offence)
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2

# allowed LAYER: the include prefixes a file of LAYER may use
allowed() {
    case "$1" in
        common)      echo "common/[a-z_]*\\.h" ;;
        common/nn)   echo "common/[a-z_]*\\.h common/nn/" ;;
        common/net)  echo "common/[a-z_]*\\.h common/net/" ;;
        common/data) echo "common/[a-z_]*\\.h common/data/" ;;
        common/fl)   echo "common/[a-z_]*\\.h common/nn/ common/net/ common/data/ common/fl/ proto/" ;;
        server)      echo "common/ proto/ server/" ;;
        client)      echo "common/ proto/ client/" ;;
    esac
}

bad=0
while IFS= read -r f; do
    layer=$(dirname "$f")
    allow=$(allowed "$layer")
    [ -n "$allow" ] || continue
    while IFS=: read -r line inc; do
        ok=0
        for a in $allow; do
            if [[ "$inc" =~ ^$a ]]; then ok=1; break; fi
        done
        if [ "$ok" = 0 ]; then
            echo "layers: $f:$line includes \"$inc\", which layer $layer may not include"
            bad=1
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | sed -E 's/^([0-9]+):.*"([^"]+)".*/\1:\2/')
done < <(find common server client -name '*.[ch]' | sort)

if [ "$bad" = 0 ]; then echo "layers: every include respects the layers"; fi
exit "$bad"
