package raccoon

import (
	"fmt"

	pb "raccoon/clients/go/raccoonpb"
)

// Event is one event of a batch. Data is turned into the event's bytes by the client's
// Serializer (protobuf by default); Type routes it (the server publishes it to the topic
// its publisher pattern names with Type, e.g. clickstream-<Type>-log).
type Event struct {
	Type string
	Data interface{}
}

// Status is the outcome of a batch, as SendEventResponse.status carries it.
type Status int32

// The values of the wire enum raystack.raccoon.v1beta1.Status.
const (
	StatusUnspecified Status = 0
	StatusSuccess     Status = 1
	StatusError       Status = 2
)

func (s Status) String() string {
	switch s {
	case StatusSuccess:
		return "SUCCESS"
	case StatusError:
		return "ERROR"
	case StatusUnspecified:
		return "UNSPECIFIED"
	}
	return fmt.Sprintf("Status(%d)", int32(s))
}

// Code tells why a batch failed, as SendEventResponse.code carries it.
type Code int32

// The values of the wire enum raystack.raccoon.v1beta1.Code.
const (
	CodeUnspecified        Code = 0
	CodeOK                 Code = 1
	CodeBadRequest         Code = 2
	CodeInternalError      Code = 3
	CodeMaxConnectionLimit Code = 4
	CodeMaxUserLimit       Code = 5
)

func (c Code) String() string {
	switch c {
	case CodeUnspecified:
		return "UNSPECIFIED"
	case CodeOK:
		return "OK"
	case CodeBadRequest:
		return "BAD_REQUEST"
	case CodeInternalError:
		return "INTERNAL_ERROR"
	case CodeMaxConnectionLimit:
		return "MAX_CONNECTION_LIMIT_REACHED"
	case CodeMaxUserLimit:
		return "MAX_USER_LIMIT_REACHED"
	}
	return fmt.Sprintf("Code(%d)", int32(c))
}

// Retryable reports whether a reply with this code is worth sending again with the same
// req_guid. Only CodeInternalError is: the server answers it when Kafka failed the batch
// (EVENT_ACK=1), when it is shutting down, or when it could not read the body. CodeBadRequest
// is the batch's own fault and fails the same way every time. The connection-level refusals
// (CodeMaxConnectionLimit, CodeMaxUserLimit) are not retried per batch: the WebSocket client
// reconnects with backoff instead (see WebSocketClient).
func (c Code) Retryable() bool { return c == CodeInternalError }

// Response is the server's SendEventResponse. SentTime is the server's clock in Unix seconds;
// Data["req_guid"] echoes the batch's request guid (absent on connection-level refusals).
type Response struct {
	Status   Status
	Code     Code
	SentTime int64
	Reason   string
	Data     map[string]string
}

// ReqGUID is Data["req_guid"].
func (r *Response) ReqGUID() string { return r.Data["req_guid"] }

func responseFromPB(p *pb.SendEventResponse) *Response {
	return &Response{
		Status:   Status(p.GetStatus()),
		Code:     Code(p.GetCode()),
		SentTime: p.GetSentTime(),
		Reason:   p.GetReason(),
		Data:     p.GetData(),
	}
}

// App identifies the application that sends, sent with every request (see SetAppInfo).
type App struct {
	ID      string
	Name    string
	Version string
}

// The request headers (gRPC: metadata keys, lower case) that carry App. The server does not
// interpret them; proxies and access logs can.
const (
	HeaderAppID      = "X-App-Id"
	HeaderAppName    = "X-App-Name"
	HeaderAppVersion = "X-App-Version"
)

func (a *App) headers() map[string]string {
	h := map[string]string{}
	if a == nil {
		return h
	}
	for k, v := range map[string]string{HeaderAppID: a.ID, HeaderAppName: a.Name, HeaderAppVersion: a.Version} {
		if v != "" {
			h[k] = v
		}
	}
	return h
}

// Client is what the three clients have in common.
type Client interface {
	// Send sends one batch with a fresh UUIDv4 request guid and returns the guid.
	Send(events []*Event) (string, *Response, error)
	// SetAppInfo sets the App sent with every later request.
	SetAppInfo(app *App)
	// Close releases the client's connections. It is safe to call more than once.
	Close() error
}
