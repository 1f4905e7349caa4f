package raccoon

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Serializer turns an Event's Data into the event's bytes (event_bytes on the wire; the
// server publishes them to Kafka byte for byte). Any func of this shape works.
type Serializer func(interface{}) ([]byte, error)

// JSON serializes Data with encoding/json.
func JSON(data interface{}) ([]byte, error) { return json.Marshal(data) }

// PROTO serializes Data, which must be a proto.Message, in protobuf binary. A []byte is
// taken as already serialized. This is the default serializer.
func PROTO(data interface{}) ([]byte, error) {
	switch d := data.(type) {
	case proto.Message:
		return proto.Marshal(d)
	case []byte:
		return d, nil
	}
	return nil, fmt.Errorf("raccoon: PROTO serializer needs a proto.Message or []byte, got %T", data)
}

// Wire is how the SendEventRequest itself is encoded on the wire.
type Wire int

const (
	// WireProto is protobuf binary: REST Content-Type application/proto, WebSocket binary
	// frames, and the only encoding gRPC has. The default.
	WireProto Wire = iota
	// WireJSON is JSON: REST Content-Type application/json, WebSocket text frames.
	WireJSON
)

func (w Wire) String() string {
	if w == WireJSON {
		return "json"
	}
	return "proto"
}
