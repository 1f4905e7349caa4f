#!/usr/bin/env bash
# Regenerates raccoonpb/ from the repository's proto/ (run from clients/go, or via `go generate`).
#
# Needs protoc (Debian: `apt-get install protobuf-compiler`, 3.21.12 made the committed files).
# The two plugins are built at the versions pinned below into a temporary GOBIN, so the output
# does not depend on whatever is on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOBIN=$bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
module=$(go list -m)
src=raystack/raccoon/v1beta1/raccoon.proto
# The proto's go_package names raystack/proton; M maps it into this module instead.
map="M$src=$module/raccoonpb;raccoonpb"
PATH="$bin:$PATH" protoc -I ../../proto \
  --go_out=. --go_opt="module=$module" --go_opt="$map" \
  --go-grpc_out=. --go-grpc_opt="module=$module" --go-grpc_opt="$map" \
  "$src"
echo "generated: $(ls raccoonpb/*.pb.go | tr '\n' ' ')"
