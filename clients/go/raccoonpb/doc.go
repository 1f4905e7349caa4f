// Package raccoonpb holds the Go types of the Raccoon wire contract, generated from the
// repository's proto/raystack/raccoon/v1beta1/raccoon.proto: SendEventRequest, Event,
// SendEventResponse, the Status and Code enums, and the EventService gRPC stubs.
//
// The generated files are committed; `go generate ./...` in clients/go (which runs
// ../gen-proto.sh, needing protoc) rebuilds them.
package raccoonpb

//go:generate bash ../gen-proto.sh
