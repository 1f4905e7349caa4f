// Package raccoon is a Go client for the Raccoon clickstream server: it sends batches of
// events (SendEventRequest) over WebSocket, REST or gRPC and hands back the server's
// SendEventResponse.
//
// Pick a transport by its constructor; all take the same ClientOptions:
//
//	ws, err := raccoon.NewWebSocket(raccoon.WithURL("ws://host:8080/api/v1/events"), raccoon.WithHeader("X-User-ID", "user-1"))
//	rest, err := raccoon.NewRest(raccoon.WithURL("http://host:8080/api/v1/events"))
//	grpc, err := raccoon.NewGrpc(raccoon.WithAddr("host:8081"), raccoon.WithHeader("X-User-ID", "user-1"))
//
// Each Event's Data becomes its bytes through the Serializer (PROTO by default, JSON, or any
// func(interface{}) ([]byte, error)); the request itself goes as protobuf or JSON (WithEncoding).
// Send generates a UUIDv4 req_guid per batch (SendContext takes one of your own) and returns
// it. REST and gRPC return the reply from Send; the WebSocket client returns once the batch is
// written and delivers the reply on Acks, a bounded channel that never holds up the connection.
//
// Failures are retried with the same req_guid: transport errors and replies with a Retryable
// code (only CODE_INTERNAL_ERROR; CODE_BAD_REQUEST never). See Retry, WebSocketClient and the
// README in this directory for the exact rules, the StatsD names and the header names.
//
// Layout: types.go (Event, Response, App, codes), options.go, serializer.go, codec.go (request
// encodings), retry.go, rest.go, grpc.go, websocket.go and websocket_conn.go, stats.go,
// logger.go, version.go (client info set with -ldflags), errors.go; raccoonpb/ holds the
// generated protobuf types.
package raccoon
