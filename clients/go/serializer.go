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

// Encoding is how the SendEventRequest itself, and the server's reply, is encoded: the same
// name, Encoding with Proto and Json, as the server's and the Rust client's.
type Encoding int

const (
	// EncodingProto is protobuf binary: REST Content-Type application/proto, WebSocket binary
	// frames, and the only encoding gRPC has. The default (the zero value).
	EncodingProto Encoding = iota
	// EncodingJSON is JSON: REST Content-Type application/json, WebSocket text frames.
	EncodingJSON
)

// String is "json" for EncodingJSON and "proto" otherwise.
func (e Encoding) String() string {
	if e == EncodingJSON {
		return "json"
	}
	return "proto"
}

// Wire is Encoding's former name.
//
// Deprecated: use Encoding.
type Wire = Encoding

const (
	// WireProto is EncodingProto's former name.
	//
	// Deprecated: use EncodingProto.
	WireProto = EncodingProto
	// WireJSON is EncodingJSON's former name.
	//
	// Deprecated: use EncodingJSON.
	WireJSON = EncodingJSON
)
