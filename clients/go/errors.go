package raccoon

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Send after Close, and delivered for batches still unacknowledged
// when the client closed.
var ErrClosed = errors.New("raccoon: client closed")

// ErrAckTimeout is delivered on the WebSocket ack channel for a batch that got no reply within
// AckTimeout on any of its attempts.
var ErrAckTimeout = errors.New("raccoon: no acknowledgement within the ack timeout")

// ErrDuplicateGUID is returned by the WebSocket client's Send when a batch with the same
// request guid is still waiting for its acknowledgement.
var ErrDuplicateGUID = errors.New("raccoon: request guid already in flight")

// ServerError is the error for a batch the server answered with a status other than SUCCESS.
// Response is the reply; Send returns it as well.
type ServerError struct {
	Response *Response
	// HTTPStatus is the REST answer's status code; 0 for the other transports.
	HTTPStatus int
}

func (e *ServerError) Error() string {
	r := e.Response
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("raccoon: server answered http %d, status %v, code %v: %s", e.HTTPStatus, r.Status, r.Code, r.Reason)
	}
	return fmt.Sprintf("raccoon: server answered status %v, code %v: %s", r.Status, r.Code, r.Reason)
}

// RejectedError is the WebSocket server refusing the connection after the upgrade:
// CodeMaxConnectionLimit (SERVER_WEBSOCKET_MAX_CONN reached) or CodeMaxUserLimit (a connection
// with the same id header and group is open).
type RejectedError struct {
	Code   Code
	Reason string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("raccoon: connection refused by the server: code %v: %s", e.Code, e.Reason)
}

// TransportError wraps a failure to reach the server or to read its answer: these are retried.
type TransportError struct {
	Op  string
	Err error
}

func (e *TransportError) Error() string { return fmt.Sprintf("raccoon: %s: %v", e.Op, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }
